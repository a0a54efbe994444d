//! `PATCH /v1/me`: the caller updates their own profile.

use api_common::error::ApiError;
use domain::user::ProfileChanges;
use domain::{Context, User};
use eventstore::{AppendedEvent, Changes, Grouped, Loaded};
use uuid::Uuid;

use super::UserVersion;
use crate::pipeline::{Answer, Command, Decision};

pub struct UpdateProfile {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub changes: ProfileChanges,
}

impl Command for UpdateProfile {
    type Unit = Grouped;
    type State = Loaded<User>;
    type Outcome = ();
    const DECIDES_ON_KEPT_STATES: bool = true;

    async fn load(&self, unit: &Grouped) -> Result<Loaded<User>, ApiError> {
        Ok(unit.reader().load::<User>(self.user_id).await?)
    }

    fn decide(&self, user: &Loaded<User>, context: &Context) -> Result<Decision, ApiError> {
        let events = domain::user::update_profile(&user.state, self.changes.clone(), context)?;
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(self.user_id)
                .appending(user, events),
        ))
    }

    fn answer(
        &self,
        user: &Loaded<User>,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        UserVersion::answer(user, appended)
    }
}
