//! `DELETE /v1/sessions/{session_id}`: log out, or an admin ends a member's session.

use api_common::error::ApiError;
use domain::{Context, Session};
use eventstore::{AppendedEvent, Changes, Grouped, Loaded};
use uuid::Uuid;

use crate::pipeline::{Answer, Command, Decision};

pub struct RevokeSession {
    pub session_id: Uuid,
    /// Who asks (the events' actor).
    pub caller_id: Uuid,
}

impl Command for RevokeSession {
    type Unit = Grouped;
    type State = Loaded<Session>;
    type Outcome = ();

    async fn load(&self, unit: &Grouped) -> Result<Loaded<Session>, ApiError> {
        Ok(unit.reader().load::<Session>(self.session_id).await?)
    }

    fn decide(&self, session: &Loaded<Session>, context: &Context) -> Result<Decision, ApiError> {
        let events = domain::session::revoke(&session.state, context)?;
        let tenant_id = session
            .state
            .tenant_id
            .ok_or(domain::DomainError::SessionNotFound)?;
        Ok(Decision::to_append(
            Changes::new(tenant_id, context.now)
                .by(self.caller_id)
                .appending(session, events),
        ))
    }

    fn answer(&self, _: &Loaded<Session>, _: (), _: &[AppendedEvent]) -> Result<Answer, ApiError> {
        Ok(Answer::no_content())
    }
}
