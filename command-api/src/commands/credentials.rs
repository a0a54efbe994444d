//! The caller's own sessions and password: end every other session
//! (`DELETE /v1/me/sessions?scope=others`), change the password (`POST /v1/me/password`,
//! which ends the other sessions too). Each in one transaction with its session ends.

use api_common::error::ApiError;
use domain::event::RevocationReason;
use domain::{Context, Session, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pipeline::{Answer, Command, Decision, last_position};

/// What the caller does.
pub enum Credentials {
    /// End every other open session.
    EndOtherSessions,
    /// Change the password: the hash the current one was verified against (if it matched),
    /// and the new one's hash.
    ChangePassword {
        verified_hash: Option<String>,
        new_password_hash: String,
    },
}

pub struct ChangeCredentials {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    /// The session the request came with: it stays.
    pub session_id: Uuid,
    pub change: Credentials,
}

/// `{revoked, position}`: how many sessions ended.
#[derive(Serialize, ToSchema)]
pub struct SessionsEnded {
    pub revoked: usize,
    pub position: i64,
}

/// `{user_id, version, position, sessions_ended}` after a password change.
#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    pub user_id: Uuid,
    pub version: i64,
    pub position: i64,
    /// The other sessions that ended with the change.
    pub sessions_ended: usize,
}

/// The user and their open sessions: what a command that ends sessions decides against.
pub async fn with_sessions(
    transaction: &Transaction,
    user_id: Uuid,
) -> Result<(Loaded<User>, Vec<Loaded<Session>>), ApiError> {
    let reader = transaction.reader();
    let user = reader.load::<User>(user_id).await?;
    let sessions = reader.open_sessions_of(user_id).await?;
    Ok((user, sessions))
}

/// `changes` with each ended session's events appended to its stream; the outcome is how
/// many ended.
pub fn ending_sessions(
    mut changes: Changes,
    sessions: &[Loaded<Session>],
    ended: Vec<(Uuid, Vec<domain::SessionEvent>)>,
) -> Decision<usize> {
    let count = ended.len();
    for (session_id, events) in ended {
        if let Some(session) = sessions.iter().find(|s| s.id == session_id) {
            changes.append(session, events);
        }
    }
    Decision {
        changes,
        outcome: count,
    }
}

impl Command for ChangeCredentials {
    type Unit = Transaction;
    type State = (Loaded<User>, Vec<Loaded<Session>>);
    /// How many sessions end.
    type Outcome = usize;

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        with_sessions(transaction, self.user_id).await
    }

    fn decide(
        &self,
        (user, sessions): &Self::State,
        context: &Context,
    ) -> Result<Decision<usize>, ApiError> {
        let mut changes = Changes::new(self.tenant_id, context.now).by(self.user_id);
        let reason = match &self.change {
            Credentials::EndOtherSessions => RevocationReason::SignedOutElsewhere,
            Credentials::ChangePassword {
                verified_hash,
                new_password_hash,
            } => {
                let password_ok =
                    verified_hash.as_deref() == Some(user.state.password_hash.as_str());
                let events = domain::lifecycle::change_password(
                    &user.state,
                    password_ok,
                    new_password_hash.clone(),
                    context,
                )?;
                changes.append(user, events);
                RevocationReason::PasswordChanged
            }
        };
        let states: Vec<Session> = sessions.iter().map(|s| s.state.clone()).collect();
        let ended = domain::lifecycle::end_other_sessions(
            &states,
            &user.state,
            self.session_id,
            reason,
            context,
        )?;
        Ok(ending_sessions(changes, sessions, ended))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        (user, _): &Self::State,
        context: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        // One security email for all the sessions ended (the projection sends none for each).
        let (Credentials::EndOtherSessions, Some(first)) = (&self.change, appended.first()) else {
            return Ok(());
        };
        let tenant = transaction
            .reader()
            .load::<domain::Tenant>(self.tenant_id)
            .await?;
        transaction
            .queue_email(&infra::email_jobs::NewJob {
                tenant_id: self.tenant_id,
                user_id: self.user_id,
                event_id: first.event_id,
                position: first.position,
                template: infra::email_jobs::Template::OtherSessionsEnded,
                recipient: user.state.email.clone(),
                variables: json!({
                    "display_name": user.state.display_name,
                    "tenant_name": tenant.state.name,
                    "locale": user.state.locale,
                    "count": appended.len().to_string(),
                }),
                due_at: context.now,
            })
            .await?;
        Ok(())
    }

    fn answer(
        &self,
        (user, _): &Self::State,
        ended: usize,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let position = last_position(appended, user.last_position);
        tracing::info!(tenant_id = %self.tenant_id, user_id = %self.user_id, sessions_ended = ended, "credentials changed");
        match self.change {
            Credentials::EndOtherSessions => Answer::ok(SessionsEnded {
                revoked: ended,
                position,
            }),
            Credentials::ChangePassword { .. } => Answer::ok(PasswordChanged {
                user_id: self.user_id,
                version: user.version + 1,
                position,
                sessions_ended: ended,
            }),
        }
    }
}
