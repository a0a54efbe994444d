//! `DELETE /v1/tenants/{tenant_id}/members/{user_id}` (an admin removes a member) and
//! `POST /v1/me/leave` (a member leaves): `tenant.member_removed`, decided against the
//! membership view under the tenant's lock, so the last active admin always stays. The
//! member leaves the tenant's teams in the same transaction.

use api_common::error::ApiError;
use domain::{Context, Team, Tenant, TenantMembers, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use uuid::Uuid;

use super::{UserVersion, load_member};
use crate::pipeline::{Answer, Command, Decision, last_position};

pub struct RemoveMember {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub caller_id: Uuid,
    /// The member leaves by themselves (reason `left`), rather than an admin removing them.
    pub leaving: bool,
}

impl Command for RemoveMember {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<User>, Vec<Loaded<Team>>, Tenant);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        let (members, user) = load_member(transaction, self.tenant_id, self.user_id).await?;
        let teams = transaction
            .reader()
            .teams_of(&members, self.user_id)
            .await?;
        let tenant = transaction.reader().load::<Tenant>(self.tenant_id).await?;
        Ok((members, user, teams, tenant.state))
    }

    fn decide(
        &self,
        (members, user, teams, tenant): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let mut events = if self.leaving {
            domain::lifecycle::leave(members, &user.state, context)?
        } else {
            domain::lifecycle::remove_member(members, &user.state, context)?
        };
        // The account then follows the tenant's deletion clock.
        events.extend(domain::lifecycle::scheduled_with_removal(
            &user.state,
            tenant,
            (self.caller_id, self.leaving),
            context.now,
        ));
        let mut changes = Changes::new(self.tenant_id, context.now)
            .by(self.caller_id)
            .appending(user, events);
        changes.leave_teams(teams, self.user_id, self.caller_id);
        Ok(Decision::to_append(changes))
    }

    fn answer(
        &self,
        (_, user, _, _): &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = %self.tenant_id, user_id = %self.user_id, leaving = self.leaving, "member removed");
        let own: Vec<AppendedEvent> = appended
            .iter()
            .filter(|event| event.aggregate_id == self.user_id)
            .cloned()
            .collect();
        let mut answer = UserVersion::answer(user, &own)?;
        if let Answer::Success {
            body: Some(body), ..
        } = &mut answer
        {
            body["position"] = last_position(appended, user.last_position).into();
        }
        Ok(answer)
    }
}
