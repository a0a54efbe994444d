//! One-time links sent by email (ADR 0019): a password reset, the confirmation of the
//! account's address after signup, and the move to a new address. Each link's token is
//! random, only its hash is in the events, the latest link of a kind replaces the earlier
//! ones, and a link opens once, before it expires.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::event::{EmailLink, RevocationReason, SessionEvent, UserEvent};
use crate::session::Session;
use crate::user::{EmailedLink, User};
use crate::values::{Email, normalise_email};
use crate::{Actor, Context, DomainError};

/// Default lifetime of a password reset link (`PASSWORD_RESET_TTL_MINUTES`).
pub const DEFAULT_RESET_TTL_MINUTES: u32 = 30;
/// Default lifetime of a link that confirms an address (`EMAIL_VERIFICATION_TTL_MINUTES`).
pub const DEFAULT_VERIFICATION_TTL_MINUTES: u32 = 1440;
/// At most one reset link per account within this time: asking again sooner appends
/// nothing and mails nobody, so a stranger can neither flood the mailbox nor grow the stream
/// faster than this.
pub const RESET_REQUEST_INTERVAL: Duration = Duration::seconds(60);

/// The account may still get and use links: present, a member, active and not scheduled
/// for deletion.
fn may_use_links(user: &User) -> Option<Uuid> {
    user.user_id
        .filter(|_| user.is_active() && user.is_member())
}

/// Someone asked for a password reset for this account (found by its address). Appends
/// nothing for an account that cannot log in anyway, or while a link of the last
/// [`RESET_REQUEST_INTERVAL`] is still unused: the answer to the asker is the same either
/// way, and decided before this runs.
pub fn request_password_reset(
    user: &User,
    token_hash: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<UserEvent> {
    let Some(user_id) = may_use_links(user) else {
        return Vec::new();
    };
    let recent = user.password_reset.as_ref().is_some_and(|link| {
        !link.used
            && link.expires_at > now
            && link
                .requested_at
                .is_some_and(|at| now - at < RESET_REQUEST_INTERVAL)
    });
    if recent {
        return Vec::new();
    }
    vec![UserEvent::PasswordResetRequested {
        user_id,
        token_hash,
        expires_at,
    }]
}

/// Whether `link` is the one the token names, unused and unexpired.
fn open_link(
    link: Option<&EmailedLink>,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let link = link
        .filter(|link| link.token_hash == token_hash)
        .ok_or(DomainError::LinkInvalid)?;
    if link.used {
        return Err(DomainError::LinkGone("the link was already used".into()));
    }
    if now >= link.expires_at {
        return Err(DomainError::LinkGone("the link has expired".into()));
    }
    Ok(())
}

/// Whether a presented reset token opens this account's link now: checked before the new
/// password is hashed, so a guessed token never costs a hash.
pub fn check_reset_link(
    user: &User,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    if !user.is_present() {
        return Err(DomainError::LinkInvalid);
    }
    open_link(user.password_reset.as_ref(), token_hash, now)
}

/// The holder of a reset link sets a new password (already checked against the rules and
/// hashed). The lock of too many wrong passwords ends with it, and the address counts as
/// verified: the link reached it. The caller ends every session with [`end_all_sessions`].
pub fn reset_password(
    user: &User,
    token_hash: &str,
    new_password_hash: String,
    now: DateTime<Utc>,
) -> Result<Vec<UserEvent>, DomainError> {
    if !user.is_present() {
        return Err(DomainError::LinkInvalid);
    }
    open_link(user.password_reset.as_ref(), token_hash, now)?;
    let user_id = may_use_links(user)
        .ok_or_else(|| DomainError::LinkGone("the account can no longer be used".into()))?;
    let mut events = vec![UserEvent::PasswordReset {
        user_id,
        password_hash: new_password_hash,
    }];
    if user.locked_until.is_some() {
        events.push(UserEvent::Unlocked {
            user_id,
            unlocked_by: Some(user_id),
        });
    }
    if !user.email_verified {
        events.push(UserEvent::EmailVerified { user_id });
    }
    Ok(events)
}

/// Ends every open session of the user (after a password reset).
pub fn end_all_sessions(
    sessions: &[Session],
    user_id: Uuid,
    reason: RevocationReason,
    now: DateTime<Utc>,
) -> Vec<(Uuid, Vec<SessionEvent>)> {
    sessions
        .iter()
        .filter(|session| session.user_id == Some(user_id) && session.is_open(now))
        .filter_map(|session| session.session_id)
        .map(|session_id| {
            (
                session_id,
                vec![SessionEvent::Revoked {
                    session_id,
                    user_id,
                    revoked_by: Some(user_id),
                    reason,
                }],
            )
        })
        .collect()
}

/// A new account (signup, an accepted invitation) is created with a link to confirm its
/// address, sent with the welcome: sets it on the `user.created` among `events`.
pub fn with_verification(events: &mut [UserEvent], token_hash: String, expires_at: DateTime<Utc>) {
    for event in events {
        if let UserEvent::Created {
            email_verification, ..
        } = event
        {
            *email_verification = Some(EmailLink {
                token_hash: token_hash.clone(),
                expires_at,
            });
        }
    }
}

/// The user asks to move their account to `new_email` (the password already checked): a
/// link goes to the new address, and nothing changes until it is opened.
pub fn request_email_change(
    user: &User,
    password_ok: bool,
    new_email: &Email,
    token_hash: String,
    expires_at: DateTime<Utc>,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = may_use_links(user).ok_or(DomainError::NotAllowed)?;
    if !matches!(context.actor, Actor::User { user_id: actor, .. } if actor == user_id) {
        return Err(DomainError::NotAllowed);
    }
    if !password_ok {
        return Err(DomainError::WrongPassword);
    }
    if new_email.normalised() == normalise_email(&user.email) {
        return Err(DomainError::Invalid(
            "new_email is the account's address already".into(),
        ));
    }
    Ok(vec![UserEvent::EmailChangeRequested {
        user_id,
        new_email: new_email.as_str().to_owned(),
        token_hash,
        expires_at,
    }])
}

/// The holder of an address link opens it: the account's own address is verified, or the
/// account moves to the new one (whose uniqueness the caller reserves in the same
/// transaction, releasing the old).
pub fn confirm_email(
    user: &User,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Vec<UserEvent>, DomainError> {
    if !user.is_present() {
        return Err(DomainError::LinkInvalid);
    }
    open_link(user.email_link.as_ref(), token_hash, now)?;
    let user_id = user
        .user_id
        .filter(|_| user.is_member() && user.purge_at.is_none())
        .ok_or_else(|| DomainError::LinkGone("the account can no longer be used".into()))?;
    Ok(match &user.pending_email {
        Some(new_email) => vec![UserEvent::EmailChanged {
            user_id,
            old_email: user.email.clone(),
            email: new_email.clone(),
        }],
        None => vec![UserEvent::EmailVerified { user_id }],
    })
}

/// A login whose password was right, of an account whose address is not verified, in a
/// tenant that requires verified addresses, fails instead (and is recorded: the caller knew
/// the password, so saying why is no enumeration).
pub fn require_verified(
    outcome: crate::user::LoginOutcome,
    user: &User,
    required: bool,
) -> crate::user::LoginOutcome {
    use crate::event::LoginFailure;
    use crate::user::LoginOutcome;
    match (outcome, user.user_id) {
        (LoginOutcome::Succeeded(_), Some(user_id)) if required && !user.email_verified => {
            let reason = LoginFailure::EmailNotVerified;
            LoginOutcome::Failed(vec![UserEvent::LoginFailed { user_id, reason }], reason)
        }
        (outcome, _) => outcome,
    }
}
