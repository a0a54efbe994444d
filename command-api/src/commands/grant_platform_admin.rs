//! `command-api grant-platform-admin <user id>`: makes an existing user a platform
//! administrator, as an event on their stream. They log in as usual; their tokens then carry
//! global oversight.

use api_common::error::ApiError;
use domain::{Context, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde_json::json;
use uuid::Uuid;

use crate::pipeline::{Answer, Command, Decision, last_position};

pub struct GrantPlatformAdmin {
    pub user_id: Uuid,
}

impl Command for GrantPlatformAdmin {
    type Unit = Transaction;
    type State = (Uuid, Loaded<User>);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        let user = transaction.reader().load::<User>(self.user_id).await?;
        let tenant_id = user
            .state
            .tenant_id
            .filter(|_| user.state.is_present())
            .ok_or_else(|| ApiError::NotFound(format!("no user {}", self.user_id)))?;
        Ok((tenant_id, user))
    }

    fn decide(
        &self,
        (tenant_id, user): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let events = domain::user::grant_platform_admin(&user.state)?;
        Ok(Decision::to_append(
            Changes::new(*tenant_id, context.now).appending(user, events),
        ))
    }

    fn answer(
        &self,
        (_, user): &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        Answer::ok(json!({"position": last_position(appended, user.last_position)}))
    }
}
