//! `DELETE /v1/tenants/{tenant_id}/members/{user_id}` (an admin removes a member) and
//! `POST /v1/me/leave` (a member leaves): `tenant.member_removed`, decided against the
//! membership view under the tenant's lock, so the last active admin always stays.

use api_common::error::ApiError;
use domain::{Context, TenantMembers, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use uuid::Uuid;

use super::{UserVersion, load_member};
use crate::pipeline::{Answer, Command, Decision};

pub struct RemoveMember {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub caller_id: Uuid,
    /// The member leaves by themselves (reason `left`), rather than an admin removing them.
    pub leaving: bool,
}

impl Command for RemoveMember {
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
        let events = if self.leaving {
            domain::user::leave(members, &user.state, context)?
        } else {
            domain::user::remove_member(members, &user.state, context)?
        };
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
        tracing::info!(tenant_id = %self.tenant_id, user_id = %self.user_id, leaving = self.leaving, "member removed");
        UserVersion::answer(user, appended)
    }
}
