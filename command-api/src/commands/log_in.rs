//! `POST /v1/tenants/{tenant_id}/sessions`: log in with email and password.
//!
//! The account is found and the password checked before the command runs: hashing is slow
//! and must not hold a connection or a lock. The command then decides against the user as
//! they are at that moment (a password changed or an account closed in between fails).

use api_common::error::ApiError;
use domain::event::LoginFailure;
use domain::user::{LoginOutcome, NewSession};
use domain::{Context, Role, Session, Tenant, User};
use eventstore::{AppendedEvent, Changes, EventStore, Grouped, Loaded};
use infra::tokens::{IssuedRefreshToken, Tokens};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::EMAIL;
use crate::pipeline::{Answer, Command, Decision, last_position};

pub const INVALID_CREDENTIALS: &str = "the email or password is not correct";

/// The account an email names in a tenant, if any, with its password hash as it is now.
pub async fn find_account(
    store: &EventStore,
    tenant_id: Uuid,
    email: &str,
) -> Result<(Option<Uuid>, Option<String>), ApiError> {
    let email_hash = store
        .keys()
        .blind_index(EMAIL, &domain::values::normalise_email(email));
    // Reads only: no transaction of its own.
    let unit = store.begin_grouped();
    let owner = unit
        .reader()
        .reservation_owner(tenant_id, EMAIL, &email_hash)
        .await?;
    let password_hash = match owner {
        Some(user_id) => Some(
            unit.reader()
                .load::<User>(user_id)
                .await?
                .state
                .password_hash,
        ),
        None => None,
    };
    unit.rollback().await;
    Ok((owner, password_hash))
}

#[derive(Serialize, ToSchema)]
pub struct SessionIssued {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Rotates on every refresh; presenting an already-used one ends the session.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: i64,
    pub session_id: Uuid,
    pub position: i64,
}

impl SessionIssued {
    /// A new access token for the session, with the refresh token that goes with it.
    pub fn issue(
        tokens: &Tokens,
        (user_id, tenant_id, role): (Uuid, Uuid, Role),
        session_id: Uuid,
        refresh: &IssuedRefreshToken,
        now: chrono::DateTime<chrono::Utc>,
        position: i64,
    ) -> Result<Self, ApiError> {
        let access_token = tokens
            .issue_access_token(user_id, tenant_id, session_id, role, now)
            .map_err(ApiError::Internal)?;
        Ok(SessionIssued {
            access_token,
            refresh_token: refresh.token.expose().clone(),
            token_type: "Bearer".into(),
            expires_in: tokens.access_expiry(now) - now.timestamp(),
            session_id,
            position,
        })
    }
}

pub struct LogIn<'a> {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    /// The hash the password was verified against, if it matched.
    pub verified_hash: Option<String>,
    pub session_id: Uuid,
    pub refresh: &'a IssuedRefreshToken,
    pub tokens: &'a Tokens,
    /// The client's `User-Agent`, trimmed to what is kept.
    pub user_agent: Option<String>,
    /// When wrong passwords lock the account.
    pub lockout: domain::lockout::LockoutPolicy,
}

/// The part of a `User-Agent` header a session keeps: printable, at most 256 characters.
pub fn kept_user_agent(header: Option<&str>) -> Option<String> {
    let agent: String = header?
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect();
    let agent = agent.trim();
    (!agent.is_empty()).then(|| agent.to_owned())
}

/// How a login ended: a session opened, or a failure recorded.
pub enum Logged {
    In { now: chrono::DateTime<chrono::Utc> },
    Out(LoginFailure),
}

/// The user, and whether their tenant requires a verified address.
pub struct LoginState {
    user: Loaded<User>,
    require_verified_email: bool,
}

impl Command for LogIn<'_> {
    type Unit = Grouped;
    type State = LoginState;
    type Outcome = Logged;
    const ANSWER_HOLDS_CREDENTIALS: bool = true;

    async fn load(&self, unit: &Grouped) -> Result<LoginState, ApiError> {
        let reader = unit.reader();
        let user = reader.load::<User>(self.user_id).await?;
        let tenant = reader.load::<Tenant>(self.tenant_id).await?;
        Ok(LoginState {
            user,
            require_verified_email: tenant.state.require_verified_email,
        })
    }

    fn decide(&self, state: &LoginState, context: &Context) -> Result<Decision<Logged>, ApiError> {
        let user = &state.user;
        let verified = self.verified_hash.as_deref() == Some(user.state.password_hash.as_str())
            && user.state.is_present();
        let outcome = domain::lockout::log_in(
            &user.state,
            verified,
            NewSession {
                session_id: self.session_id,
                refresh_token_hash: self.refresh.hash.clone(),
                expires_at: context.now + self.tokens.refresh_ttl,
                user_agent: self.user_agent.clone(),
            },
            &self.lockout,
            context,
        )?;
        let outcome =
            domain::links::require_verified(outcome, &user.state, state.require_verified_email);
        let mut changes = Changes::new(self.tenant_id, context.now).by(self.user_id);
        let outcome = match outcome {
            LoginOutcome::Succeeded(events) => {
                changes.create::<Session>(self.session_id, events);
                Logged::In { now: context.now }
            }
            LoginOutcome::Failed(events, reason) => {
                changes.append(user, events);
                Logged::Out(reason)
            }
        };
        Ok(Decision { changes, outcome })
    }

    fn answer(
        &self,
        LoginState { user, .. }: &LoginState,
        outcome: Logged,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let (tenant_id, user_id, session_id) = (self.tenant_id, self.user_id, self.session_id);
        match outcome {
            Logged::In { now } => {
                tracing::info!(%tenant_id, %user_id, %session_id, "user logged in");
                let role = user.state.role.unwrap_or(Role::Member);
                Answer::created(SessionIssued::issue(
                    self.tokens,
                    (user_id, tenant_id, role),
                    session_id,
                    self.refresh,
                    now,
                    last_position(appended, 0),
                )?)
            }
            Logged::Out(reason) => {
                tracing::info!(%tenant_id, %user_id, ?reason, "login failed");
                Ok(Answer::Refused(match reason {
                    LoginFailure::InvalidPassword => {
                        ApiError::Unauthenticated(INVALID_CREDENTIALS.into())
                    }
                    LoginFailure::Deactivated => {
                        ApiError::Forbidden("the account is deactivated".into())
                    }
                    LoginFailure::EmailNotVerified => ApiError::Forbidden(
                        "the account's email address is not verified: open the link sent to it, \
                         or reset the password to get a new one"
                            .into(),
                    ),
                }))
            }
        }
    }
}
