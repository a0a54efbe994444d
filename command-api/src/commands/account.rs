//! An account's end and its self-service: an admin schedules a member's deletion or restores
//! it (`DELETE /v1/tenants/{tenant_id}/users/{user_id}`, `POST …/restore`); the user deletes
//! or deactivates their own account with their password (`DELETE /v1/me`,
//! `POST /v1/me/deactivate`). Decided against the membership view under the tenant's lock, so
//! the last active admin always stays.

use api_common::error::ApiError;
use chrono::{DateTime, Utc};
use domain::{Context, DomainError, Tenant, TenantMembers, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{UserVersion, load_member};
use crate::pipeline::{Answer, Command, Decision, last_position};

/// What happens to the account.
pub enum AccountChange {
    /// An admin schedules the deletion.
    ScheduleDeletion,
    /// An admin restores an account scheduled for deletion.
    Restore,
    /// The user deletes their own account; the hash their password was verified against,
    /// if it matched.
    DeleteSelf { verified_hash: Option<String> },
    /// The user deactivates their own account (password checked as above).
    DeactivateSelf { verified_hash: Option<String> },
}

pub struct ChangeAccount {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub caller_id: Uuid,
    pub change: AccountChange,
}

/// `{user_id, position, purge_at}` after a deletion was scheduled.
#[derive(Serialize, ToSchema)]
pub struct DeletionScheduled {
    pub user_id: Uuid,
    pub position: i64,
    /// When the account and its personal data are purged unless restored before.
    pub purge_at: DateTime<Utc>,
}

impl Command for ChangeAccount {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<User>, Tenant);
    /// When a scheduled deletion purges the account.
    type Outcome = Option<DateTime<Utc>>;

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        let (members, user) = load_member(transaction, self.tenant_id, self.user_id).await?;
        let tenant = transaction.reader().load::<Tenant>(self.tenant_id).await?;
        Ok((members, user, tenant.state))
    }

    fn decide(
        &self,
        (members, user, tenant): &Self::State,
        context: &Context,
    ) -> Result<Decision<Self::Outcome>, ApiError> {
        let state = &user.state;
        let password_ok = |verified: &Option<String>| {
            verified.as_deref() == Some(state.password_hash.as_str()) && state.is_present()
        };
        let events = match &self.change {
            AccountChange::ScheduleDeletion => {
                domain::lifecycle::schedule_deletion(members, state, tenant, context)?
            }
            AccountChange::Restore => domain::lifecycle::cancel_deletion(members, state, context)?,
            AccountChange::DeleteSelf { verified_hash } => domain::lifecycle::delete_self(
                members,
                state,
                tenant,
                password_ok(verified_hash),
                context,
            )?,
            AccountChange::DeactivateSelf { verified_hash } => domain::lifecycle::deactivate_self(
                members,
                state,
                password_ok(verified_hash),
                context,
            )?,
        };
        let purge_at = events.iter().find_map(|event| match event {
            domain::UserEvent::DeletionScheduled { purge_at, .. } => Some(*purge_at),
            _ => None,
        });
        Ok(Decision {
            changes: Changes::new(self.tenant_id, context.now)
                .by(self.caller_id)
                .appending(user, events),
            outcome: purge_at,
        })
    }

    fn answer(
        &self,
        (_, user, _): &Self::State,
        purge_at: Self::Outcome,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = %self.tenant_id, user_id = %self.user_id, events = appended.len(), "account changed");
        match self.change {
            AccountChange::ScheduleDeletion | AccountChange::DeleteSelf { .. } => {
                let purge_at = purge_at.ok_or(DomainError::DeletionNotScheduled)?;
                Answer::accepted(DeletionScheduled {
                    user_id: self.user_id,
                    position: last_position(appended, user.last_position),
                    purge_at,
                })
            }
            AccountChange::Restore | AccountChange::DeactivateSelf { .. } => {
                UserVersion::answer(user, appended)
            }
        }
    }
}
