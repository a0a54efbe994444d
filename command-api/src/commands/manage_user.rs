//! `PATCH /v1/tenants/{tenant_id}/users/{user_id}`: an admin changes a member's role,
//! status or profile, decided against the tenant's membership view under its lock.

use api_common::error::ApiError;
use domain::user::ProfileChanges;
use domain::{Context, Role, TenantMembers, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use uuid::Uuid;

use super::{UserVersion, load_member};
use crate::pipeline::{Answer, Command, Decision};

/// Active or deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Deactivated,
}

pub struct ManageUser {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub caller_id: Uuid,
    /// What is absent, or already so, stays as it is.
    pub role: Option<Role>,
    pub status: Option<Status>,
    /// Profile fields the admin sets (the admin is the actor of `user.profile_updated`).
    pub profile: ProfileChanges,
}

impl Command for ManageUser {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<User>);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        load_member(transaction, self.tenant_id, self.user_id).await
    }

    fn decide(
        &self,
        (members, user): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let (mut members, mut target) = (members.clone(), user.state.clone());
        let mut events = Vec::new();
        if let Some(role) = self.role {
            let decided = domain::user::change_role(&members, &target, role, context)?;
            for event in &decided {
                members.apply(self.user_id, event);
                target.apply(event);
            }
            events.extend(decided);
        }
        if let Some(status) = self.status {
            let decided = match status {
                Status::Active => domain::user::reactivate(&members, &target, context)?,
                Status::Deactivated => domain::user::deactivate(&members, &target, context)?,
            };
            decided.iter().for_each(|event| target.apply(event));
            events.extend(decided);
        }
        if !self.profile.is_empty() {
            events.extend(domain::user::edit_profile(
                &members,
                &target,
                self.profile.clone(),
                context,
            )?);
        }
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(self.caller_id)
                .appending(user, events),
        ))
    }

    fn answer(
        &self,
        (_, user): &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        UserVersion::answer(user, appended)
    }
}
