//! The commands behind the one-time links sent by email (ADR 0019): set a new password with
//! a reset link (every session ends), confirm an address (the account's own, or the new one
//! it moves to, whose reservation moves in the same transaction), and ask to move to a new
//! address. A link's token is kept sealed only until its email is sent; using or replacing
//! the link forgets it.

use api_common::error::ApiError;
use chrono::{DateTime, Utc};
use domain::event::RevocationReason;
use domain::values::{Email, normalise_email};
use domain::{Context, DomainError, Session, User, UserEvent};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use infra::crypto::LinkToken;
use infra::email_jobs::{EmailSecret, LinkPurpose};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::EMAIL;
use super::credentials::{ending_sessions, with_sessions};
use crate::pipeline::{Answer, Command, Decision, last_position};

/// A new link for an account, with its expiry.
pub struct NewLink {
    pub token: LinkToken,
    pub expires_at: DateTime<Utc>,
}

impl NewLink {
    pub fn for_user(user_id: Uuid, lifetime: chrono::Duration) -> Result<Self, ApiError> {
        Ok(NewLink {
            token: super::link_token(user_id)?,
            expires_at: Utc::now() + lifetime,
        })
    }
}

/// Keeps a link's token sealed for the email of the event that carries its hash (the first
/// one appended to the user's stream: `user.created` with the welcome, or the request),
/// forgetting the link it replaces.
pub async fn keep_link(
    transaction: &Transaction,
    tenant_id: Uuid,
    user_id: Uuid,
    purpose: LinkPurpose,
    link: &NewLink,
    appended: &[AppendedEvent],
) -> Result<(), ApiError> {
    let Some(event) = appended.iter().find(|e| e.aggregate_id == user_id) else {
        return Ok(());
    };
    transaction.forget_email_secrets(user_id, purpose).await?;
    transaction
        .keep_email_secret(&EmailSecret {
            event_id: event.event_id,
            tenant_id,
            aggregate_id: user_id,
            purpose,
            token: &link.token.token,
            expires_at: link.expires_at,
        })
        .await?;
    Ok(())
}

/// `POST /v1/password-resets/confirm`: the holder of a reset link sets a new password.
pub struct ConfirmPasswordReset {
    pub user_id: Uuid,
    pub token_hash: String,
    pub new_password_hash: String,
}

/// `{user_id, position, sessions_ended}` after a reset.
#[derive(Serialize, ToSchema)]
pub struct PasswordResetDone {
    pub user_id: Uuid,
    pub position: i64,
    /// The sessions that ended with the reset (all of the account's).
    pub sessions_ended: usize,
}

impl Command for ConfirmPasswordReset {
    type Unit = Transaction;
    type State = (Loaded<User>, Vec<Loaded<Session>>);
    type Outcome = usize;

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        with_sessions(transaction, self.user_id).await
    }

    fn decide(
        &self,
        (user, sessions): &Self::State,
        context: &Context,
    ) -> Result<Decision<usize>, ApiError> {
        let tenant_id = user.state.tenant_id.ok_or(DomainError::LinkInvalid)?;
        let events = domain::links::reset_password(
            &user.state,
            &self.token_hash,
            self.new_password_hash.clone(),
            context.now,
        )?;
        let changes = Changes::new(tenant_id, context.now)
            .by(self.user_id)
            .appending(user, events);
        let states: Vec<Session> = sessions.iter().map(|s| s.state.clone()).collect();
        let ended = domain::links::end_all_sessions(
            &states,
            self.user_id,
            RevocationReason::PasswordReset,
            context.now,
        );
        Ok(ending_sessions(changes, sessions, ended))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _: &Self::State,
        _: &Context,
        _: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        Ok(transaction
            .forget_email_secrets(self.user_id, LinkPurpose::PasswordReset)
            .await?)
    }

    fn answer(
        &self,
        (user, _): &Self::State,
        ended: usize,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = ?user.state.tenant_id, user_id = %self.user_id, sessions_ended = ended, "password reset");
        Answer::ok(PasswordResetDone {
            user_id: self.user_id,
            position: last_position(appended, user.last_position),
            sessions_ended: ended,
        })
    }
}

/// `POST /v1/email-verifications/confirm`: the holder of an address link confirms it.
pub struct ConfirmEmail {
    pub user_id: Uuid,
    pub token_hash: String,
}

/// `{user_id, email_verified, email_changed, position}`.
#[derive(Serialize, ToSchema)]
pub struct EmailConfirmed {
    pub user_id: Uuid,
    pub email_verified: bool,
    /// The link moved the account to a new address (`user.email_changed`).
    pub email_changed: bool,
    pub position: i64,
}

impl Command for ConfirmEmail {
    type Unit = Transaction;
    type State = Loaded<User>;
    type Outcome = bool;

    async fn load(&self, transaction: &Transaction) -> Result<Loaded<User>, ApiError> {
        Ok(transaction.reader().load::<User>(self.user_id).await?)
    }

    fn decide(&self, user: &Loaded<User>, context: &Context) -> Result<Decision<bool>, ApiError> {
        let tenant_id = user.state.tenant_id.ok_or(DomainError::LinkInvalid)?;
        let events = domain::links::confirm_email(&user.state, &self.token_hash, context.now)?;
        let changed = events
            .iter()
            .any(|event| matches!(event, UserEvent::EmailChanged { .. }));
        Ok(Decision {
            changes: Changes::new(tenant_id, context.now)
                .by(self.user_id)
                .appending(user, events),
            outcome: changed,
        })
    }

    async fn within(
        &self,
        transaction: &Transaction,
        user: &Loaded<User>,
        _: &Context,
        _: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        if let (Some(tenant_id), Some(new_email)) =
            (user.state.tenant_id, &user.state.pending_email)
        {
            // The reservation moves with the account, in the same transaction: of two
            // accounts moving to one address, the second finds it taken (409).
            let keys = transaction.keys();
            let old = keys.blind_index(EMAIL, &normalise_email(&user.state.email));
            let new = keys.blind_index(EMAIL, &normalise_email(new_email));
            transaction
                .release(tenant_id, EMAIL, &old, self.user_id)
                .await?;
            transaction
                .reserve(tenant_id, EMAIL, &new, self.user_id)
                .await?;
        }
        Ok(transaction
            .forget_email_secrets(self.user_id, LinkPurpose::EmailVerification)
            .await?)
    }

    fn answer(
        &self,
        user: &Loaded<User>,
        changed: bool,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = ?user.state.tenant_id, user_id = %self.user_id, email_changed = changed, "email address confirmed");
        Answer::ok(EmailConfirmed {
            user_id: self.user_id,
            email_verified: true,
            email_changed: changed,
            position: last_position(appended, user.last_position),
        })
    }
}

/// `POST /v1/me/email`: the caller asks to move their account to a new address.
pub struct RequestEmailChange {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    /// The hash the password was verified against, if it matched.
    pub verified_hash: Option<String>,
    pub new_email: Email,
    pub link: NewLink,
}

/// `{user_id, expires_at, position}`: the link is on its way to the new address.
#[derive(Serialize, ToSchema)]
pub struct EmailChangeRequested {
    pub user_id: Uuid,
    /// Until when the link to the new address works.
    pub expires_at: DateTime<Utc>,
    pub position: i64,
}

impl Command for RequestEmailChange {
    type Unit = Transaction;
    type State = Loaded<User>;
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Loaded<User>, ApiError> {
        let hash = transaction
            .keys()
            .blind_index(EMAIL, &self.new_email.normalised());
        let owner = transaction
            .reader()
            .reservation_owner(self.tenant_id, EMAIL, &hash)
            .await?;
        if owner.is_some_and(|owner| owner != self.user_id) {
            return Err(DomainError::EmailTaken.into());
        }
        Ok(transaction.reader().load::<User>(self.user_id).await?)
    }

    fn decide(&self, user: &Loaded<User>, context: &Context) -> Result<Decision, ApiError> {
        let password_ok = self.verified_hash.as_deref() == Some(user.state.password_hash.as_str());
        let events = domain::links::request_email_change(
            &user.state,
            password_ok,
            &self.new_email,
            self.link.token.hash.clone(),
            self.link.expires_at,
            context,
        )?;
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(self.user_id)
                .appending(user, events),
        ))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _: &Loaded<User>,
        _: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        keep_link(
            transaction,
            self.tenant_id,
            self.user_id,
            LinkPurpose::EmailVerification,
            &self.link,
            appended,
        )
        .await
    }

    fn answer(
        &self,
        user: &Loaded<User>,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = %self.tenant_id, user_id = %self.user_id, "email change asked for; link sent to the new address");
        Answer::accepted(EmailChangeRequested {
            user_id: self.user_id,
            expires_at: self.link.expires_at,
            position: last_position(appended, user.last_position),
        })
    }
}
