//! `DELETE /v1/tenants/{tenant_id}/users/{user_id}`: an admin erases a member (GDPR): the
//! erasure event, the deletion confirmation queued while the address can still be read,
//! then the data key destroyed — in one transaction.

use api_common::error::ApiError;
use domain::{Context, Team, Tenant, TenantMembers, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{leave_teams, load_member, teams_of};
use crate::pipeline::{Answer, Command, Decision, last_position};

pub struct EraseUser {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub caller_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct UserErased {
    pub user_id: Uuid,
    pub position: i64,
}

impl Command for EraseUser {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<User>, Vec<Loaded<Team>>);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        let (members, user) = load_member(transaction, self.tenant_id, self.user_id).await?;
        let teams = teams_of(transaction, &members, self.user_id).await?;
        Ok((members, user, teams))
    }

    fn decide(
        &self,
        (members, user, teams): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let events = domain::user::erase(members, &user.state, context)?;
        let mut changes = Changes::new(self.tenant_id, context.now)
            .by(self.caller_id)
            .appending(user, events);
        leave_teams(&mut changes, teams, self.user_id, self.caller_id);
        Ok(Decision::to_append(changes))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        (_, user, _): &Self::State,
        context: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        queue_deletion_confirmation(transaction, self.tenant_id, &user.state, context, appended)
            .await?;
        transaction
            .erase_subject(self.tenant_id, self.user_id)
            .await?;
        tracing::info!(tenant_id = %self.tenant_id, user_id = %self.user_id, "user erased; data key destroyed");
        Ok(())
    }

    fn answer(
        &self,
        (_, user, _): &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        Answer::ok(UserErased {
            user_id: self.user_id,
            position: last_position(appended, user.last_position),
        })
    }
}

/// The deletion confirmation, queued in the erasure's transaction: the last moment the
/// address can be read. The job gives the address up once it is finished.
async fn queue_deletion_confirmation(
    transaction: &Transaction,
    tenant_id: Uuid,
    user: &User,
    context: &Context,
    appended: &[AppendedEvent],
) -> Result<(), ApiError> {
    let deleted = appended
        .iter()
        .rev()
        .find(|event| Some(event.aggregate_id) == user.user_id);
    let (Some(user_id), Some(deleted)) = (user.user_id, deleted) else {
        return Ok(());
    };
    let tenant = transaction.reader().load::<Tenant>(tenant_id).await?;
    transaction
        .queue_email(&infra::email_jobs::NewJob {
            tenant_id,
            user_id,
            event_id: deleted.event_id,
            position: deleted.position,
            template: infra::email_jobs::Template::AccountDeleted,
            recipient: user.email.clone(),
            variables: json!({
                "display_name": user.display_name,
                "tenant_name": tenant.state.name,
                "locale": user.locale,
            }),
            due_at: context.now,
        })
        .await?;
    Ok(())
}
