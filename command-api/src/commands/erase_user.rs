//! `DELETE /v1/tenants/{tenant_id}/users/{user_id}`: an admin erases a member (GDPR): the
//! erasure event, the deletion confirmation queued while the address can still be read,
//! then the data key destroyed — in one transaction.

use api_common::error::ApiError;
use domain::{Context, Team, TenantMembers, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::load_member;
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
        let teams = transaction
            .reader()
            .teams_of(&members, self.user_id)
            .await?;
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
        changes.leave_teams(teams, self.user_id, self.caller_id);
        Ok(Decision::to_append(changes))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        (_, user, _): &Self::State,
        context: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        transaction
            .queue_deletion_confirmation(self.tenant_id, &user.state, context.now, appended)
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
