//! Password guessing: after `threshold` wrong passwords within `window` an account is locked
//! for a time that doubles with each lock (from `first_lock` up to `longest_lock`). A locked
//! account's login is refused exactly as a wrong password is, and appends nothing, so an
//! attacker cannot grow the victim's stream; the system unlocks it when the time has passed.

use chrono::{DateTime, Duration, Utc};

use crate::event::{LoginFailure, UserEvent};
use crate::user::{LoginOutcome, NewSession, User};
use crate::{Context, DomainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Wrong passwords within `window` that lock the account (0: never locked).
    pub threshold: u32,
    pub window: Duration,
    pub first_lock: Duration,
    pub longest_lock: Duration,
}

impl LockoutPolicy {
    /// No lockout at all.
    pub const NONE: LockoutPolicy = LockoutPolicy {
        threshold: 0,
        window: Duration::zero(),
        first_lock: Duration::zero(),
        longest_lock: Duration::zero(),
    };

    /// How long the lock after `earlier` locks lasts.
    pub fn lock_for(&self, earlier: u32) -> Duration {
        let factor = 1i32 << earlier.min(20);
        (self.first_lock * factor).min(self.longest_lock)
    }
}

/// A login attempt under the lockout policy (the password already checked).
pub fn log_in(
    user: &User,
    password_verified: bool,
    session: NewSession,
    policy: &LockoutPolicy,
    context: &Context,
) -> Result<LoginOutcome, DomainError> {
    if user.locked_until.is_some_and(|until| until > context.now) && user.is_member() {
        // Refused as a wrong password would be, and nothing is recorded.
        return Ok(LoginOutcome::Failed(
            Vec::new(),
            LoginFailure::InvalidPassword,
        ));
    }
    let outcome = crate::user::log_in(user, password_verified, session, context)?;
    let LoginOutcome::Failed(mut events, LoginFailure::InvalidPassword) = outcome else {
        return Ok(outcome);
    };
    let Some(user_id) = user.user_id else {
        return Ok(LoginOutcome::Failed(events, LoginFailure::InvalidPassword));
    };
    if policy.threshold > 0 && !events.is_empty() {
        let since = context.now - policy.window;
        let recent = user
            .recent_failures
            .iter()
            .filter(|at| **at > since)
            .count() as u32
            + 1;
        if recent >= policy.threshold {
            events.push(UserEvent::Locked {
                user_id,
                until: context.now + policy.lock_for(user.locks),
                failures: recent,
            });
        }
    }
    Ok(LoginOutcome::Failed(events, LoginFailure::InvalidPassword))
}

/// The system ends a lock whose time has passed; anything else appends nothing.
pub fn unlock_due(user: &User, now: DateTime<Utc>) -> Vec<UserEvent> {
    match (user.user_id, user.locked_until) {
        (Some(user_id), Some(until)) if user.is_present() && now >= until => {
            vec![UserEvent::Unlocked {
                user_id,
                unlocked_by: None,
            }]
        }
        _ => Vec::new(),
    }
}
