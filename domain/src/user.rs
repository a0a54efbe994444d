//! The user aggregate: identity, profile, membership role and status of one person in one
//! tenant.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{LoginFailure, RemovalReason, SessionEvent, UserEvent};
use crate::members::TenantMembers;
use crate::tenant::Tenant;
use crate::values::{DisplayName, Email, Locale, Phone};
use crate::{Actor, Context, DomainError, Role, UserStatus};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub user_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub email: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub locale: Option<String>,
    pub password_hash: String,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
    /// When the user was last deactivated or removed from the tenant: sessions started
    /// before it never come back.
    pub last_deactivated_at: Option<DateTime<Utc>>,
    pub erased: bool,
    /// When a scheduled deletion purges the account; until then it is locked out.
    pub purge_at: Option<DateTime<Utc>>,
    /// Who scheduled the deletion (the purge names them as its actor's cause).
    pub deletion_scheduled_by: Option<Uuid>,
    pub platform_admin: bool,
    pub failed_logins: u32,
    /// When the recent wrong passwords were given (those a lock counts).
    pub recent_failures: Vec<DateTime<Utc>>,
    /// Logins are refused until then (too many wrong passwords).
    pub locked_until: Option<DateTime<Utc>>,
    /// How many times the account was locked: each lock lasts longer.
    pub locks: u32,
    /// Whether the holder of the address confirmed it (a link, a reset, an address change).
    pub email_verified: bool,
    /// The latest password reset link.
    pub password_reset: Option<EmailedLink>,
    /// The latest link to confirm an address: the account's own (sent with the welcome), or
    /// `pending_email`.
    pub email_link: Option<EmailedLink>,
    /// The address the latest email link moves the account to, if it is a change.
    pub pending_email: Option<String>,
    /// The number of events applied: the stream's version.
    pub version: i64,
}

/// A one-time link sent by email: only its token's hash is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailedLink {
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// When it was asked for (known when folded with event times).
    pub requested_at: Option<DateTime<Utc>>,
    pub used: bool,
}

impl EmailedLink {
    pub(crate) fn new(token_hash: &str, expires_at: DateTime<Utc>) -> Self {
        EmailedLink {
            token_hash: token_hash.to_owned(),
            expires_at,
            requested_at: None,
            used: false,
        }
    }

    pub(crate) fn use_up(link: &mut Option<EmailedLink>) {
        if let Some(link) = link {
            link.used = true;
        }
    }
}

/// User signup under an existing tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUpUser {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub email: Email,
    pub display_name: DisplayName,
    pub password_hash: String,
}

/// A profile update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    pub display_name: Option<DisplayName>,
    /// `Some(None)` clears the phone number.
    pub phone: Option<Option<Phone>>,
    pub locale: Option<Locale>,
}

impl ProfileChanges {
    /// Whether the update names no field at all.
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none() && self.phone.is_none() && self.locale.is_none()
    }
}

/// A new session to open when a login succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub session_id: Uuid,
    pub refresh_token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// The client's `User-Agent`, already trimmed to what is kept.
    pub user_agent: Option<String>,
}

/// What a login attempt comes to. A failure is an outcome with its own event, not an error:
/// it must be recorded even though the caller is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    Succeeded(Vec<SessionEvent>),
    Failed(Vec<UserEvent>, LoginFailure),
}

impl User {
    /// A user that exists and has not been erased.
    pub fn is_present(&self) -> bool {
        self.user_id.is_some() && !self.erased
    }

    /// Present, active and not scheduled for deletion: may act.
    pub fn is_active(&self) -> bool {
        self.is_present() && self.status == Some(UserStatus::Active) && self.purge_at.is_none()
    }

    /// Present and still a member of their tenant (not removed, not left).
    pub fn is_member(&self) -> bool {
        self.is_present() && self.role.is_some()
    }

    pub fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::Created {
                user_id,
                tenant_id,
                email,
                display_name,
                password_hash,
                email_verification,
                ..
            } => {
                self.email_link = email_verification
                    .as_ref()
                    .map(|link| EmailedLink::new(&link.token_hash, link.expires_at));
                self.user_id = Some(*user_id);
                self.tenant_id = Some(*tenant_id);
                self.email.clone_from(email);
                self.display_name.clone_from(display_name);
                self.password_hash.clone_from(password_hash);
                self.status = Some(UserStatus::Active);
            }
            UserEvent::MemberJoined { role, .. } => self.role = Some(*role),
            UserEvent::LoginFailed { .. } => self.failed_logins += 1,
            UserEvent::ProfileUpdated { .. } => {
                if let Some(delta) = event.profile_delta() {
                    delta.apply(&mut self.display_name, &mut self.phone, &mut self.locale);
                }
            }
            UserEvent::MemberRoleChanged { new_role, .. } => self.role = Some(*new_role),
            UserEvent::Deactivated { .. } => self.status = Some(UserStatus::Deactivated),
            UserEvent::Reactivated { .. } => self.status = Some(UserStatus::Active),
            UserEvent::MemberRemoved { .. } => self.role = None,
            UserEvent::PlatformAdminGranted { .. } => self.platform_admin = true,
            UserEvent::DeletionScheduled {
                purge_at,
                scheduled_by,
                ..
            } => {
                self.purge_at = Some(*purge_at);
                self.deletion_scheduled_by = Some(*scheduled_by);
            }
            UserEvent::Locked { until, .. } => {
                self.locked_until = Some(*until);
                self.locks += 1;
                self.recent_failures.clear();
            }
            UserEvent::Unlocked { .. } => self.locked_until = None,
            UserEvent::PasswordChanged { password_hash, .. } => {
                self.password_hash.clone_from(password_hash);
                // A reset link asked for before the change no longer opens the account.
                self.password_reset = None;
            }
            UserEvent::PasswordResetRequested {
                token_hash,
                expires_at,
                ..
            } => self.password_reset = Some(EmailedLink::new(token_hash, *expires_at)),
            UserEvent::PasswordReset { password_hash, .. } => {
                self.password_hash.clone_from(password_hash);
                self.recent_failures.clear();
                EmailedLink::use_up(&mut self.password_reset);
            }
            UserEvent::EmailChangeRequested {
                token_hash,
                expires_at,
                new_email,
                ..
            } => {
                self.email_link = Some(EmailedLink::new(token_hash, *expires_at));
                self.pending_email = Some(new_email.clone());
            }
            UserEvent::EmailVerified { .. } => {
                self.email_verified = true;
                EmailedLink::use_up(&mut self.email_link);
            }
            UserEvent::EmailChanged { email, .. } => {
                self.email.clone_from(email);
                self.email_verified = true;
                self.pending_email = None;
                EmailedLink::use_up(&mut self.email_link);
            }
            UserEvent::DeletionCancelled { status, .. } => {
                self.purge_at = None;
                self.deletion_scheduled_by = None;
                self.status = Some(*status);
            }
            UserEvent::Deleted { .. } => {
                self.erased = true;
                self.email.clear();
                self.display_name.clear();
                self.phone = None;
                self.password_hash.clear();
                self.pending_email = None;
                self.password_reset = None;
                self.email_link = None;
            }
        }
        self.version += 1;
    }

    /// Like [`User::apply`], also recording when a deactivation happened.
    pub fn apply_at(&mut self, event: &UserEvent, occurred_at: DateTime<Utc>) {
        if matches!(
            event,
            UserEvent::Deactivated { .. }
                | UserEvent::MemberRemoved { .. }
                | UserEvent::DeletionScheduled { .. }
        ) {
            self.last_deactivated_at = Some(occurred_at);
        }
        if let UserEvent::LoginFailed {
            reason: LoginFailure::InvalidPassword,
            ..
        } = event
        {
            self.recent_failures.push(occurred_at);
        }
        self.apply(event);
        let link = match event {
            UserEvent::PasswordResetRequested { .. } => self.password_reset.as_mut(),
            UserEvent::EmailChangeRequested { .. } => self.email_link.as_mut(),
            _ => None,
        };
        if let Some(link) = link {
            link.requested_at = Some(occurred_at);
        }
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a UserEvent>) -> Self {
        let mut user = User::default();
        for event in events {
            user.apply(event);
        }
        user
    }

    pub(crate) fn require_present(&self) -> Result<Uuid, DomainError> {
        match self.user_id {
            Some(user_id) if !self.erased => Ok(user_id),
            _ => Err(DomainError::UserNotFound),
        }
    }
}

/// User signup: `user.created` and `tenant.member_joined` (as member).
pub fn sign_up(
    tenant: &Tenant,
    user: &User,
    command: SignUpUser,
    _context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    if tenant.tenant_id != Some(command.tenant_id) {
        return Err(DomainError::TenantNotFound);
    }
    if user.user_id.is_some() {
        return Err(DomainError::UserAlreadyExists);
    }
    tenant.admits_self_signup(&command.email)?;
    Ok(vec![
        UserEvent::Created {
            user_id: command.user_id,
            tenant_id: command.tenant_id,
            email: command.email.into_inner(),
            display_name: command.display_name.into_inner(),
            password_hash: command.password_hash,
            email_verification: None,
            source: None,
        },
        UserEvent::MemberJoined {
            tenant_id: command.tenant_id,
            user_id: command.user_id,
            role: Role::Member,
        },
    ])
}

/// A login attempt whose password was already checked against `user.password_hash`.
pub fn log_in(
    user: &User,
    password_verified: bool,
    session: NewSession,
    _context: &Context,
) -> Result<LoginOutcome, DomainError> {
    let user_id = user.require_present()?;
    let tenant_id = user.tenant_id.ok_or(DomainError::UserNotFound)?;
    if !user.is_member() || user.purge_at.is_some() {
        // Removed, left or scheduled for deletion: answered as an unknown address, and
        // nothing is recorded on an account that is no longer the tenant's.
        return Ok(LoginOutcome::Failed(
            Vec::new(),
            LoginFailure::InvalidPassword,
        ));
    }
    let failure = if !password_verified {
        Some(LoginFailure::InvalidPassword)
    } else if !user.is_active() {
        Some(LoginFailure::Deactivated)
    } else {
        None
    };
    Ok(match failure {
        Some(reason) => {
            LoginOutcome::Failed(vec![UserEvent::LoginFailed { user_id, reason }], reason)
        }
        None => LoginOutcome::Succeeded(vec![SessionEvent::LoggedIn {
            session_id: session.session_id,
            user_id,
            tenant_id,
            refresh_token_hash: session.refresh_token_hash,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
        }]),
    })
}

/// The user changes their own profile. Fields given with their current value are not
/// changes; an update that changes nothing appends nothing.
pub fn update_profile(
    user: &User,
    changes: ProfileChanges,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = user.require_present()?;
    let actor = match context.actor {
        Actor::User { user_id: actor, .. } if actor == user_id => actor,
        Actor::PlatformAdmin { user_id } => user_id,
        _ => return Err(DomainError::NotAllowed),
    };
    Ok(profile_updated(user, user_id, changes, actor))
}

/// A tenant admin changes a member's profile (the admin is the actor; the user is told as
/// when they change it themselves).
pub fn edit_profile(
    members: &TenantMembers,
    user: &User,
    changes: ProfileChanges,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let (actor, user_id) = admin_acting_on(members, user, context)?;
    Ok(profile_updated(user, user_id, changes, actor))
}

/// The `user.profile_updated` for what differs from the profile, or nothing.
fn profile_updated(
    user: &User,
    user_id: Uuid,
    changes: ProfileChanges,
    actor: Uuid,
) -> Vec<UserEvent> {
    let display_name = changes
        .display_name
        .map(DisplayName::into_inner)
        .filter(|name| *name != user.display_name);
    let phone = match changes.phone {
        Some(Some(phone)) => {
            (user.phone.as_deref() != Some(phone.as_str())).then(|| Some(phone.into_inner()))
        }
        Some(None) => user.phone.is_some().then_some(None),
        None => None,
    };
    let locale = changes
        .locale
        .map(Locale::into_inner)
        .filter(|locale| user.locale.as_deref() != Some(locale.as_str()));
    UserEvent::profile_updated(user_id, display_name, phone, locale, actor)
        .into_iter()
        .collect()
}

/// A tenant admin changes a member's role. Demoting the last active admin is refused.
pub fn change_role(
    members: &TenantMembers,
    user: &User,
    new_role: Role,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let (actor, user_id) = admin_acting_on(members, user, context)?;
    let tenant_id = user.tenant_id.ok_or(DomainError::UserNotFound)?;
    let old_role = user.role.ok_or(DomainError::UserNotFound)?;
    if old_role == new_role {
        return Ok(Vec::new());
    }
    if old_role == Role::Admin && members.is_last_active_admin(user_id) {
        return Err(DomainError::LastActiveAdmin);
    }
    Ok(vec![UserEvent::MemberRoleChanged {
        tenant_id,
        user_id,
        old_role,
        new_role,
        changed_by: actor,
    }])
}

/// The admin acting and the present user they act on, or why not.
pub(crate) fn admin_acting_on(
    members: &TenantMembers,
    user: &User,
    context: &Context,
) -> Result<(Uuid, Uuid), DomainError> {
    Ok((
        members.require_admin(&context.actor)?,
        user.require_present()?,
    ))
}

/// A tenant admin deactivates a member: they can no longer log in and their sessions end.
/// Deactivating a deactivated member changes nothing.
pub fn deactivate(
    members: &TenantMembers,
    user: &User,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let (actor, user_id) = admin_acting_on(members, user, context)?;
    if user.status == Some(UserStatus::Deactivated) {
        return Ok(Vec::new());
    }
    if members.is_last_active_admin(user_id) {
        return Err(DomainError::LastActiveAdmin);
    }
    Ok(vec![UserEvent::Deactivated {
        user_id,
        deactivated_by: actor,
        by_admin: actor != user_id,
    }])
}

/// A tenant admin reactivates a deactivated member. Sessions ended by the deactivation stay
/// ended: the user logs in again.
pub fn reactivate(
    members: &TenantMembers,
    user: &User,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let (actor, user_id) = admin_acting_on(members, user, context)?;
    let mut events = Vec::new();
    if user.status != Some(UserStatus::Active) {
        events.push(UserEvent::Reactivated {
            user_id,
            reactivated_by: actor,
        });
    }
    // Reactivating a locked account ends its lock too.
    if user.locked_until.is_some() {
        events.push(UserEvent::Unlocked {
            user_id,
            unlocked_by: Some(actor),
        });
    }
    Ok(events)
}

/// A tenant admin erases a member (GDPR): `tenant.member_removed` then `user.deleted`. The
/// store destroys the user's data key in the same transaction.
pub fn erase(
    members: &TenantMembers,
    user: &User,
    context: &Context,
) -> Result<Vec<UserEvent>, DomainError> {
    let (actor, user_id) = admin_acting_on(members, user, context)?;
    let tenant_id = user.tenant_id.ok_or(DomainError::UserNotFound)?;
    if members.is_last_active_admin(user_id) {
        return Err(DomainError::LastActiveAdmin);
    }
    let mut events = Vec::new();
    // A member who already left or was removed is not removed twice.
    if user.is_member() {
        events.push(UserEvent::MemberRemoved {
            tenant_id,
            user_id,
            removed_by: actor,
            reason: RemovalReason::Removed,
        });
    }
    events.push(UserEvent::Deleted {
        user_id,
        deleted_by: actor,
        erasure: true,
    });
    Ok(events)
}

/// An operator grants platform administration (from the command line, not the API).
/// Granting it twice changes nothing.
pub fn grant_platform_admin(user: &User) -> Result<Vec<UserEvent>, DomainError> {
    let user_id = user.require_present()?;
    if user.platform_admin {
        return Ok(Vec::new());
    }
    Ok(vec![UserEvent::PlatformAdminGranted { user_id }])
}
