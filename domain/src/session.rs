//! The session aggregate: one login, its rotating refresh token and its end.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{RevocationReason, SessionEvent};
use crate::user::User;
use crate::{Actor, Context, DomainError, Role};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub session_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub started_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_token_hash: String,
    /// Refresh tokens already rotated out: presenting one again means the token leaked.
    pub previous_token_hashes: Vec<String>,
    pub revoked: bool,
    /// The number of events applied: the stream's version.
    pub version: i64,
}

/// A refresh with a token whose hash is `presented_hash`, rotating it to `new_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    pub presented_hash: String,
    pub new_hash: String,
    pub new_expires_at: DateTime<Utc>,
}

/// What a refresh comes to. A rejection may still carry events (closing a session whose
/// rotated token was replayed) that must be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    Rotated(Vec<SessionEvent>),
    Rejected(Vec<SessionEvent>),
}

impl Session {
    pub fn apply(&mut self, event: &SessionEvent, occurred_at: DateTime<Utc>) {
        match event {
            SessionEvent::LoggedIn {
                session_id,
                user_id,
                tenant_id,
                refresh_token_hash,
                expires_at,
                ..
            } => {
                self.session_id = Some(*session_id);
                self.user_id = Some(*user_id);
                self.tenant_id = Some(*tenant_id);
                self.started_at = Some(occurred_at);
                self.expires_at = Some(*expires_at);
                self.refresh_token_hash.clone_from(refresh_token_hash);
            }
            SessionEvent::Refreshed {
                refresh_token_hash,
                expires_at,
                ..
            } => {
                let previous =
                    std::mem::replace(&mut self.refresh_token_hash, refresh_token_hash.clone());
                self.previous_token_hashes.push(previous);
                self.expires_at = Some(*expires_at);
            }
            SessionEvent::Revoked { .. } => self.revoked = true,
        }
        self.version += 1;
    }

    /// Open: started, not revoked, not expired at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.session_id.is_some() && !self.revoked && self.expires_at.is_some_and(|at| at > now)
    }
}

/// Rotates a session's refresh token. The session must be open, its user active and not
/// deactivated since the session began, and the presented token the current one. A token
/// that was already rotated out closes the session (reuse detection).
pub fn refresh(
    session: &Session,
    user: &User,
    command: Refresh,
    context: &Context,
) -> Result<RefreshOutcome, DomainError> {
    let session_id = session.session_id.ok_or(DomainError::SessionNotFound)?;
    let user_id = session.user_id.ok_or(DomainError::SessionNotFound)?;
    if !session.is_open(context.now) {
        return Ok(RefreshOutcome::Rejected(Vec::new()));
    }
    if session
        .previous_token_hashes
        .contains(&command.presented_hash)
    {
        return Ok(RefreshOutcome::Rejected(vec![SessionEvent::Revoked {
            session_id,
            user_id,
            revoked_by: None,
            reason: RevocationReason::RefreshTokenReused,
        }]));
    }
    let deactivated_since_start = match (user.last_deactivated_at, session.started_at) {
        (Some(deactivated), Some(started)) => deactivated >= started,
        _ => false,
    };
    if command.presented_hash != session.refresh_token_hash
        || !user.is_active()
        || !user.is_member()
        || user.user_id != Some(user_id)
        || deactivated_since_start
    {
        return Ok(RefreshOutcome::Rejected(Vec::new()));
    }
    Ok(RefreshOutcome::Rotated(vec![SessionEvent::Refreshed {
        session_id,
        user_id,
        refresh_token_hash: command.new_hash,
        expires_at: command.new_expires_at,
    }]))
}

/// Ends a session: its owner logs out, or an admin of its tenant revokes it. Anyone else
/// is told the session does not exist, so session ids cannot be probed.
pub fn revoke(session: &Session, context: &Context) -> Result<Vec<SessionEvent>, DomainError> {
    let session_id = session.session_id.ok_or(DomainError::SessionNotFound)?;
    let owner = session.user_id.ok_or(DomainError::SessionNotFound)?;
    let (revoked_by, reason) = match context.actor {
        Actor::User { user_id, .. } if user_id == owner => (user_id, RevocationReason::Logout),
        Actor::User {
            user_id,
            tenant_id,
            role: Role::Admin,
        } if Some(tenant_id) == session.tenant_id => (user_id, RevocationReason::RevokedByAdmin),
        Actor::PlatformAdmin { user_id } => (user_id, RevocationReason::RevokedByAdmin),
        _ => return Err(DomainError::SessionNotFound),
    };
    if session.revoked {
        return Ok(Vec::new());
    }
    Ok(vec![SessionEvent::Revoked {
        session_id,
        user_id: owner,
        revoked_by: Some(revoked_by),
        reason,
    }])
}
