//! An account's end: an admin (or the user themselves) schedules its deletion, which locks it
//! out at once; an admin can restore it until its purge; the system purges it when the
//! tenant's grace period has passed. Also the self-service deactivation. (Immediate GDPR
//! erasure is `user::erase`.)

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::event::{RemovalReason, RevocationReason, SessionEvent, UserEvent};
use crate::members::TenantMembers;
use crate::session::Session;
use crate::tenant::Tenant;
use crate::user::User;
use crate::{Actor, Context, DomainError, UserStatus};

/// When an account whose deletion is scheduled now is purged under the tenant's settings.
pub fn purge_time(tenant: &Tenant, now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(i64::from(tenant.deletion_grace_days()))
}

fn require_present(user: &User) -> Result<Uuid, DomainError> {
    match user.user_id {
        Some(user_id) if user.is_present() => Ok(user_id),
        _ => Err(DomainError::UserNotFound),
    }
}

fn scheduled(
    members: &TenantMembers,
    user: &User,
    tenant: &Tenant,
    (actor, by_self): (Uuid, bool),
    now: DateTime<Utc>,
) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = require_present(user)?;
    if user.purge_at.is_some() {
        return Err(DomainError::DeletionAlreadyScheduled);
    }
    if members.is_last_active_admin(user_id) {
        return Err(DomainError::LastActiveAdmin);
    }
    Ok(vec![UserEvent::DeletionScheduled {
        user_id,
        purge_at: purge_time(tenant, now),
        scheduled_by: actor,
        by_self,
    }])
}

/// A tenant admin schedules a member's deletion: locked out now, purged after the tenant's
/// grace period unless restored. The last active admin's deletion is refused.
pub fn schedule_deletion(
    members: &TenantMembers,
    user: &User,
    tenant: &Tenant,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    scheduled(members, user, tenant, (actor, false), context.now)
}

/// The user deletes their own account (their password already checked: `password_ok`).
pub fn delete_self(
    members: &TenantMembers,
    user: &User,
    tenant: &Tenant,
    password_ok: bool,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = require_self(user, context)?;
    if !password_ok {
        return Err(DomainError::WrongPassword);
    }
    scheduled(members, user, tenant, (user_id, true), context.now)
}

/// The user deactivates their own account (their password already checked). The last
/// active admin cannot.
pub fn deactivate_self(
    members: &TenantMembers,
    user: &User,
    password_ok: bool,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = require_self(user, context)?;
    if !password_ok {
        return Err(DomainError::WrongPassword);
    }
    if members.is_last_active_admin(user_id) {
        return Err(DomainError::LastActiveAdmin);
    }
    Ok(vec![UserEvent::Deactivated {
        user_id,
        deactivated_by: user_id,
        by_admin: false,
    }])
}

fn require_self(user: &User, context: &Context) -> Result<Uuid, DomainError> {
    let user_id = require_present(user)?;
    match context.actor {
        Actor::User { user_id: actor, .. } if actor == user_id && user.is_active() => Ok(user_id),
        _ => Err(DomainError::NotAllowed),
    }
}

/// A member removed from the tenant (or leaving it) follows the same clock as a deleted
/// account: their deletion is scheduled with the removal, unless it already is.
pub fn scheduled_with_removal(
    user: &User,
    tenant: &Tenant,
    (actor, by_self): (Uuid, bool),
    now: DateTime<Utc>,
) -> Vec<UserEvent> {
    match user.user_id {
        Some(user_id) if user.is_present() && user.purge_at.is_none() => {
            vec![UserEvent::DeletionScheduled {
                user_id,
                purge_at: purge_time(tenant, now),
                scheduled_by: actor,
                by_self,
            }]
        }
        _ => Vec::new(),
    }
}

/// A tenant admin restores an account scheduled for deletion, before its purge: it is what
/// it was (active or deactivated) and can log in again if active.
pub fn cancel_deletion(
    members: &TenantMembers,
    user: &User,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    let user_id = require_present(user)?;
    if user.purge_at.is_none() {
        return Err(DomainError::DeletionNotScheduled);
    }
    Ok(vec![UserEvent::DeletionCancelled {
        user_id,
        cancelled_by: actor,
        status: user.status.unwrap_or(UserStatus::Active),
    }])
}

/// What an accepted invitation does to a removed account whose deletion is scheduled: the
/// deletion is cancelled by the admin who invited.
pub fn cancelled_by_invitation(user: &User, inviter: Uuid) -> Vec<UserEvent> {
    match (user.user_id, user.purge_at) {
        (Some(user_id), Some(_)) => vec![UserEvent::DeletionCancelled {
            user_id,
            cancelled_by: inviter,
            status: user.status.unwrap_or(UserStatus::Active),
        }],
        _ => Vec::new(),
    }
}

/// The system purges an account once its purge time has passed: it leaves the tenant (if it
/// still is a member) and is deleted, its data key destroyed by the store in the same
/// transaction. Anything else (restored, already purged, not yet due) appends nothing.
pub fn purge(user: &User, now: DateTime<Utc>) -> Vec<UserEvent> {
    let (Some(user_id), Some(tenant_id), Some(purge_at)) =
        (user.user_id, user.tenant_id, user.purge_at)
    else {
        return Vec::new();
    };
    if !user.is_present() || now < purge_at {
        return Vec::new();
    }
    let by = user.deletion_scheduled_by.unwrap_or(user_id);
    let mut events = Vec::new();
    if user.is_member() {
        events.push(UserEvent::MemberRemoved {
            tenant_id,
            user_id,
            removed_by: by,
            reason: RemovalReason::Removed,
        });
    }
    events.push(UserEvent::Deleted {
        user_id,
        deleted_by: by,
        erasure: true,
    });
    events
}

/// The user changes their password (the current one already checked): their other sessions
/// end with it (`reason`: password changed).
pub fn change_password(
    user: &User,
    password_ok: bool,
    new_password_hash: String,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = require_self(user, context)?;
    if !password_ok {
        return Err(DomainError::WrongPassword);
    }
    Ok(vec![UserEvent::PasswordChanged {
        user_id,
        password_hash: new_password_hash,
        changed_by: user_id,
    }])
}

/// Ends every open session of the user but `current`, each with `reason`.
pub fn end_other_sessions(
    sessions: &[Session],
    user: &User,
    current: Uuid,
    reason: RevocationReason,
    context: &Context,
) -> Result<Vec<(Uuid, Vec<SessionEvent>)>, DomainError> {
    let user_id = require_self(user, context)?;
    Ok(sessions
        .iter()
        .filter(|session| session.user_id == Some(user_id) && session.is_open(context.now))
        .filter_map(|session| session.session_id)
        .filter(|session_id| *session_id != current)
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
        .collect())
}

/// A tenant admin removes a member from the tenant: their sessions end and they can no
/// longer log in; the account stays, locked, until its deletion (the account-lifecycle
/// rules). The last active admin cannot be removed.
pub fn remove_member(
    members: &TenantMembers,
    user: &User,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let (actor, user_id) = crate::user::admin_acting_on(members, user, context)?;
    removal(members, user, user_id, actor, RemovalReason::Removed)
}

/// A member leaves the tenant by themselves. The last active admin cannot leave.
pub fn leave(
    members: &TenantMembers,
    user: &User,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = user.require_present()?;
    match context.actor {
        Actor::User { user_id: actor, .. } if actor == user_id => {}
        _ => return Err(DomainError::NotAllowed),
    }
    removal(members, user, user_id, user_id, RemovalReason::Left)
}

fn removal(
    members: &TenantMembers,
    user: &User,
    user_id: Uuid,
    actor: Uuid,
    reason: RemovalReason,
) -> Result<Vec<UserEvent>, DomainError> {
    let tenant_id = user.tenant_id.ok_or(DomainError::UserNotFound)?;
    if !user.is_member() {
        return Err(DomainError::UserNotFound);
    }
    if members.is_last_active_admin(user_id) {
        return Err(DomainError::LastActiveAdmin);
    }
    Ok(vec![UserEvent::MemberRemoved {
        tenant_id,
        user_id,
        removed_by: actor,
        reason,
    }])
}
