//! `POST /v1/sessions/refresh`: rotate the refresh token and get a new access token.

use api_common::error::ApiError;
use domain::session::{Refresh, RefreshOutcome};
use domain::{Context, Role, Session, User};
use eventstore::{AppendedEvent, Changes, Grouped, Loaded};
use infra::tokens::{IssuedRefreshToken, Tokens};
use uuid::Uuid;

use super::log_in::SessionIssued;
use crate::pipeline::{Answer, Command, Decision, last_position};

pub const INVALID_REFRESH: &str = "the refresh token is not valid";

pub struct RefreshSession<'a> {
    pub session_id: Uuid,
    pub presented_hash: String,
    pub next: &'a IssuedRefreshToken,
    pub tokens: &'a Tokens,
    /// Told the session's tenant once it is known (for the request's span and metrics).
    pub on_tenant: &'a (dyn Fn(Uuid) + Sync),
}

pub struct SessionOf {
    session: Loaded<Session>,
    user: Loaded<User>,
    user_id: Uuid,
    tenant_id: Uuid,
}

pub enum Refreshed {
    Rotated { now: chrono::DateTime<chrono::Utc> },
    Rejected,
}

impl Command for RefreshSession<'_> {
    type Unit = Grouped;
    type State = SessionOf;
    type Outcome = Refreshed;
    const ANSWER_HOLDS_CREDENTIALS: bool = true;

    async fn load(&self, unit: &Grouped) -> Result<SessionOf, ApiError> {
        let reader = unit.reader();
        let session = reader.load::<Session>(self.session_id).await?;
        let (Some(user_id), Some(tenant_id)) = (session.state.user_id, session.state.tenant_id)
        else {
            return Err(ApiError::Unauthenticated(INVALID_REFRESH.into()));
        };
        (self.on_tenant)(tenant_id);
        let user = reader.load::<User>(user_id).await?;
        Ok(SessionOf {
            session,
            user,
            user_id,
            tenant_id,
        })
    }

    fn decide(&self, of: &SessionOf, context: &Context) -> Result<Decision<Refreshed>, ApiError> {
        let outcome = domain::session::refresh(
            &of.session.state,
            &of.user.state,
            Refresh {
                presented_hash: self.presented_hash.clone(),
                new_hash: self.next.hash.clone(),
                new_expires_at: context.now + self.tokens.refresh_ttl,
            },
            context,
        )?;
        let mut changes = Changes::new(of.tenant_id, context.now).by(of.user_id);
        let outcome = match outcome {
            RefreshOutcome::Rotated(events) => {
                changes.append(&of.session, events);
                Refreshed::Rotated { now: context.now }
            }
            RefreshOutcome::Rejected(events) => {
                if !events.is_empty() {
                    tracing::warn!(tenant_id = %of.tenant_id, user_id = %of.user_id, session_id = %self.session_id, "a rotated refresh token was reused; session closed");
                }
                changes.append(&of.session, events);
                Refreshed::Rejected
            }
        };
        Ok(Decision { changes, outcome })
    }

    fn answer(
        &self,
        of: &SessionOf,
        outcome: Refreshed,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        match outcome {
            Refreshed::Rotated { now } => {
                let role = of.user.state.role.unwrap_or(Role::Member);
                Answer::ok(SessionIssued::issue(
                    self.tokens,
                    (of.user_id, of.tenant_id, role),
                    self.session_id,
                    self.next,
                    now,
                    last_position(appended, of.session.last_position),
                )?)
            }
            Refreshed::Rejected => Ok(Answer::Refused(ApiError::Unauthenticated(
                INVALID_REFRESH.into(),
            ))),
        }
    }
}
