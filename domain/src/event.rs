//! The events of each aggregate: past-tense facts, named `<area>.<fact>` as in the
//! published contract. Each enum serialises as `{"type": ..., "data": {...}}`; the event
//! store splits the two into columns. Teams and invitations have their own streams
//! (`event/team.rs`, `event/invitation.rs`). Every type is at schema version 1; older versions
//! are upcast on read by the store, so these types only ever see the current shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::SignupPolicy;
use crate::{Plan, Role};

mod invitation;
mod team;

pub use invitation::InvitationEvent;
pub use team::{TeamDeparture, TeamEvent};

/// What every event enum tells the store about itself.
pub trait EventKind {
    /// The aggregate type whose stream holds the event (`tenant`, `user`, `session`).
    const AGGREGATE_TYPE: &'static str;
    /// The event's type name, such as `user.created`.
    fn event_type(&self) -> &'static str;
    /// The schema version this code writes.
    fn schema_version(&self) -> i32 {
        1
    }
    /// The top-level fields of `data` that hold personal data. The store encrypts them
    /// with the subject's key, so erasing the key makes them unreadable forever.
    fn personal_fields(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Events of the tenant stream (aggregate id = tenant id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TenantEvent {
    #[serde(rename = "tenant.created")]
    Created {
        tenant_id: Uuid,
        name: String,
        plan: Plan,
        admin_user_id: Uuid,
    },
    /// A platform administrator set the tenant's request limit (`None`: back to its plan's).
    #[serde(rename = "tenant.rate_limit_changed")]
    RateLimitChanged {
        tenant_id: Uuid,
        requests_per_hour: Option<u32>,
    },
    /// A tenant admin changed the tenant's settings; only what changed is present.
    #[serde(rename = "tenant.settings_changed")]
    SettingsChanged {
        tenant_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signup_policy: Option<SignupPolicy>,
        /// The whole new list (lower-case, sorted, without repeats) when it changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_domains: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deletion_grace_days: Option<u32>,
        /// Whether the inviter is told when an invitation expires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invitation_expiry_notices: Option<bool>,
        /// Whether login refuses accounts whose address is not verified.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        require_verified_email: Option<bool>,
        changed_by: Uuid,
    },
}

impl EventKind for TenantEvent {
    const AGGREGATE_TYPE: &'static str = "tenant";
    fn event_type(&self) -> &'static str {
        match self {
            TenantEvent::Created { .. } => "tenant.created",
            TenantEvent::RateLimitChanged { .. } => "tenant.rate_limit_changed",
            TenantEvent::SettingsChanged { .. } => "tenant.settings_changed",
        }
    }
}

/// Why a login attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    InvalidPassword,
    Deactivated,
    /// The tenant requires a verified address and this account's is not (yet).
    EmailNotVerified,
}

impl LoginFailure {
    pub fn as_str(&self) -> &'static str {
        match self {
            LoginFailure::InvalidPassword => "invalid_password",
            LoginFailure::Deactivated => "deactivated",
            LoginFailure::EmailNotVerified => "email_not_verified",
        }
    }
}

/// Why a member left a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// An admin removed them.
    #[default]
    Removed,
    /// They left by themselves.
    Left,
}

impl RemovalReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RemovalReason::Removed => "removed",
            RemovalReason::Left => "left",
        }
    }
}

/// Fields a profile update can clear (set to nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearableField {
    Phone,
}

/// Events of a user's stream (aggregate id = user id). Everything about one user and their
/// membership lives here, so most commands append to a single stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    #[serde(rename = "user.created")]
    Created {
        user_id: Uuid,
        tenant_id: Uuid,
        email: String,
        display_name: String,
        password_hash: String,
    },
    #[serde(rename = "tenant.member_joined")]
    MemberJoined {
        tenant_id: Uuid,
        user_id: Uuid,
        role: Role,
    },
    #[serde(rename = "user.login_failed")]
    LoginFailed { user_id: Uuid, reason: LoginFailure },
    #[serde(rename = "user.profile_updated")]
    ProfileUpdated {
        user_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cleared: Vec<ClearableField>,
        updated_by: Uuid,
    },
    #[serde(rename = "tenant.member_role_changed")]
    MemberRoleChanged {
        tenant_id: Uuid,
        user_id: Uuid,
        old_role: Role,
        new_role: Role,
        changed_by: Uuid,
    },
    #[serde(rename = "user.deactivated")]
    Deactivated {
        user_id: Uuid,
        deactivated_by: Uuid,
        by_admin: bool,
    },
    #[serde(rename = "user.reactivated")]
    Reactivated { user_id: Uuid, reactivated_by: Uuid },
    #[serde(rename = "tenant.member_removed")]
    MemberRemoved {
        tenant_id: Uuid,
        user_id: Uuid,
        removed_by: Uuid,
        /// `removed` by an admin (also before an erasure) or `left` by the member. Events
        /// written before the field existed read as `removed`.
        #[serde(default)]
        reason: RemovalReason,
    },
    /// An operator made the user a platform administrator (global oversight).
    #[serde(rename = "user.platform_admin_granted")]
    PlatformAdminGranted { user_id: Uuid },
    /// The account is locked out and hidden, and will be purged (`user.deleted`, its data
    /// key destroyed) at `purge_at` unless the deletion is cancelled before.
    #[serde(rename = "user.deletion_scheduled")]
    DeletionScheduled {
        user_id: Uuid,
        purge_at: DateTime<Utc>,
        scheduled_by: Uuid,
        /// The user asked for it themselves (`DELETE /v1/me`, or leaving the tenant).
        by_self: bool,
    },
    /// An admin restored an account scheduled for deletion; it is `status` again.
    #[serde(rename = "user.deletion_cancelled")]
    DeletionCancelled {
        user_id: Uuid,
        cancelled_by: Uuid,
        status: crate::UserStatus,
    },
    /// Too many wrong passwords in a row: logins are refused until `until`.
    #[serde(rename = "user.locked")]
    Locked {
        user_id: Uuid,
        until: DateTime<Utc>,
        /// The wrong passwords within the window that locked it.
        failures: u32,
    },
    /// The lock ended: by the system when its time passed (`unlocked_by` null), or by an
    /// admin reactivating the account.
    #[serde(rename = "user.unlocked")]
    Unlocked {
        user_id: Uuid,
        #[serde(default)]
        unlocked_by: Option<Uuid>,
    },
    /// The user changed their password (their other sessions end with it).
    #[serde(rename = "user.password_changed")]
    PasswordChanged {
        user_id: Uuid,
        password_hash: String,
        changed_by: Uuid,
    },
    /// Someone asked for a link to reset the password. Only the token's hash is kept; the
    /// token itself is only in the email.
    #[serde(rename = "user.password_reset_requested")]
    PasswordResetRequested {
        user_id: Uuid,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// The password was set anew through an emailed reset link (every session ends with it).
    #[serde(rename = "user.password_reset")]
    PasswordReset {
        user_id: Uuid,
        password_hash: String,
    },
    /// A link to confirm an address went out: the account's own (no `new_email`: after
    /// signup), or the address it asked to move to.
    #[serde(rename = "user.email_verification_requested")]
    EmailVerificationRequested {
        user_id: Uuid,
        token_hash: String,
        expires_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_email: Option<String>,
    },
    /// The holder of the account's address confirmed it.
    #[serde(rename = "user.email_verified")]
    EmailVerified { user_id: Uuid },
    /// The account moved to a new address, confirmed from it (so it is verified).
    #[serde(rename = "user.email_changed")]
    EmailChanged {
        user_id: Uuid,
        old_email: String,
        email: String,
    },
    #[serde(rename = "user.deleted")]
    Deleted {
        user_id: Uuid,
        deleted_by: Uuid,
        erasure: bool,
    },
}

/// What a profile update does to an optional field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldChange<'a> {
    Keep,
    Set(&'a str),
    Clear,
}

impl FieldChange<'_> {
    pub fn apply(self, field: &mut Option<String>) {
        match self {
            FieldChange::Keep => {}
            FieldChange::Set(value) => *field = Some(value.to_owned()),
            FieldChange::Clear => *field = None,
        }
    }
}

/// The effect of one `user.profile_updated` on a profile, read once from the event, so that
/// every fold of it (the aggregate, the read model, the replay) means the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileDelta<'a> {
    pub display_name: Option<&'a str>,
    pub phone: FieldChange<'a>,
    pub locale: Option<&'a str>,
}

impl ProfileDelta<'_> {
    /// Applies the update to a profile's fields.
    pub fn apply(
        &self,
        display_name: &mut String,
        phone: &mut Option<String>,
        locale: &mut Option<String>,
    ) {
        if let Some(name) = self.display_name {
            name.clone_into(display_name);
        }
        self.phone.apply(phone);
        if let Some(value) = self.locale {
            *locale = Some(value.to_owned());
        }
    }
}

impl UserEvent {
    /// What a `user.profile_updated` changes; `None` for every other event. Clearing a field
    /// wins over a value given for it in the same event.
    pub fn profile_delta(&self) -> Option<ProfileDelta<'_>> {
        let UserEvent::ProfileUpdated {
            display_name,
            phone,
            locale,
            cleared,
            ..
        } = self
        else {
            return None;
        };
        let phone = if cleared.contains(&ClearableField::Phone) {
            FieldChange::Clear
        } else {
            phone.as_deref().map_or(FieldChange::Keep, FieldChange::Set)
        };
        Some(ProfileDelta {
            display_name: display_name.as_deref(),
            phone,
            locale: locale.as_deref(),
        })
    }

    /// The profile fields a `user.profile_updated` changes, in a fixed order (what the
    /// activity log and the profile notice name); empty for every other event.
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let Some(delta) = self.profile_delta() else {
            return Vec::new();
        };
        let mut fields = Vec::new();
        if delta.display_name.is_some() {
            fields.push("display_name");
        }
        if delta.phone != FieldChange::Keep {
            fields.push("phone");
        }
        if delta.locale.is_some() {
            fields.push("locale");
        }
        fields
    }
}

impl EventKind for UserEvent {
    const AGGREGATE_TYPE: &'static str = "user";
    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::Created { .. } => "user.created",
            UserEvent::MemberJoined { .. } => "tenant.member_joined",
            UserEvent::LoginFailed { .. } => "user.login_failed",
            UserEvent::ProfileUpdated { .. } => "user.profile_updated",
            UserEvent::MemberRoleChanged { .. } => "tenant.member_role_changed",
            UserEvent::Deactivated { .. } => "user.deactivated",
            UserEvent::Reactivated { .. } => "user.reactivated",
            UserEvent::MemberRemoved { .. } => "tenant.member_removed",
            UserEvent::PlatformAdminGranted { .. } => "user.platform_admin_granted",
            UserEvent::DeletionScheduled { .. } => "user.deletion_scheduled",
            UserEvent::DeletionCancelled { .. } => "user.deletion_cancelled",
            UserEvent::PasswordChanged { .. } => "user.password_changed",
            UserEvent::Locked { .. } => "user.locked",
            UserEvent::Unlocked { .. } => "user.unlocked",
            UserEvent::PasswordResetRequested { .. } => "user.password_reset_requested",
            UserEvent::PasswordReset { .. } => "user.password_reset",
            UserEvent::EmailVerificationRequested { .. } => "user.email_verification_requested",
            UserEvent::EmailVerified { .. } => "user.email_verified",
            UserEvent::EmailChanged { .. } => "user.email_changed",
            UserEvent::Deleted { .. } => "user.deleted",
        }
    }
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            UserEvent::Created { .. } => &["email", "display_name", "password_hash"],
            UserEvent::ProfileUpdated { .. } => &["display_name", "phone"],
            UserEvent::PasswordChanged { .. } | UserEvent::PasswordReset { .. } => {
                &["password_hash"]
            }
            UserEvent::EmailVerificationRequested { .. } => &["new_email"],
            UserEvent::EmailChanged { .. } => &["old_email", "email"],
            _ => &[],
        }
    }
}

/// Why a session ended before its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// The user ended their own session.
    Logout,
    /// An administrator ended it.
    RevokedByAdmin,
    /// A refresh token that had already been rotated was presented again: the token
    /// family is considered stolen and the session is closed.
    RefreshTokenReused,
    /// The user ended all their other sessions (`DELETE /v1/me/sessions?scope=others`).
    SignedOutElsewhere,
    /// The user changed their password: every other session ends.
    PasswordChanged,
    /// The password was reset through an emailed link: every session ends.
    PasswordReset,
}

impl RevocationReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RevocationReason::Logout => "logout",
            RevocationReason::RevokedByAdmin => "revoked_by_admin",
            RevocationReason::RefreshTokenReused => "refresh_token_reused",
            RevocationReason::SignedOutElsewhere => "signed_out_elsewhere",
            RevocationReason::PasswordChanged => "password_changed",
            RevocationReason::PasswordReset => "password_reset",
        }
    }
}

/// Events of a session's stream (aggregate id = session id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    #[serde(rename = "user.logged_in")]
    LoggedIn {
        session_id: Uuid,
        user_id: Uuid,
        tenant_id: Uuid,
        refresh_token_hash: String,
        expires_at: DateTime<Utc>,
        /// The client's `User-Agent` (at most 256 characters), when it sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
    },
    #[serde(rename = "user.session_refreshed")]
    Refreshed {
        session_id: Uuid,
        user_id: Uuid,
        refresh_token_hash: String,
        expires_at: DateTime<Utc>,
    },
    #[serde(rename = "user.session_revoked")]
    Revoked {
        session_id: Uuid,
        user_id: Uuid,
        revoked_by: Option<Uuid>,
        reason: RevocationReason,
    },
}

impl EventKind for SessionEvent {
    const AGGREGATE_TYPE: &'static str = "session";
    fn event_type(&self) -> &'static str {
        match self {
            SessionEvent::LoggedIn { .. } => "user.logged_in",
            SessionEvent::Refreshed { .. } => "user.session_refreshed",
            SessionEvent::Revoked { .. } => "user.session_revoked",
        }
    }
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            SessionEvent::LoggedIn { .. } => &["user_agent"],
            _ => &[],
        }
    }
}

/// Any event, with the stream it belongs to. This is what a decision hands to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    Tenant {
        tenant_id: Uuid,
        event: TenantEvent,
    },
    User {
        user_id: Uuid,
        event: UserEvent,
    },
    Session {
        session_id: Uuid,
        event: SessionEvent,
    },
    Team {
        team_id: Uuid,
        event: TeamEvent,
    },
    Invitation {
        invitation_id: Uuid,
        event: InvitationEvent,
    },
}

impl DomainEvent {
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            DomainEvent::Tenant { .. } => TenantEvent::AGGREGATE_TYPE,
            DomainEvent::User { .. } => UserEvent::AGGREGATE_TYPE,
            DomainEvent::Session { .. } => SessionEvent::AGGREGATE_TYPE,
            DomainEvent::Team { .. } => TeamEvent::AGGREGATE_TYPE,
            DomainEvent::Invitation { .. } => InvitationEvent::AGGREGATE_TYPE,
        }
    }

    pub fn aggregate_id(&self) -> Uuid {
        match self {
            DomainEvent::Tenant { tenant_id, .. } => *tenant_id,
            DomainEvent::User { user_id, .. } => *user_id,
            DomainEvent::Session { session_id, .. } => *session_id,
            DomainEvent::Team { team_id, .. } => *team_id,
            DomainEvent::Invitation { invitation_id, .. } => *invitation_id,
        }
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::Tenant { event, .. } => event.event_type(),
            DomainEvent::User { event, .. } => event.event_type(),
            DomainEvent::Session { event, .. } => event.event_type(),
            DomainEvent::Team { event, .. } => event.event_type(),
            DomainEvent::Invitation { event, .. } => event.event_type(),
        }
    }

    pub fn schema_version(&self) -> i32 {
        match self {
            DomainEvent::Tenant { event, .. } => event.schema_version(),
            DomainEvent::User { event, .. } => event.schema_version(),
            DomainEvent::Session { event, .. } => event.schema_version(),
            DomainEvent::Team { event, .. } => event.schema_version(),
            DomainEvent::Invitation { event, .. } => event.schema_version(),
        }
    }

    pub fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            DomainEvent::Tenant { event, .. } => event.personal_fields(),
            DomainEvent::User { event, .. } => event.personal_fields(),
            DomainEvent::Session { event, .. } => event.personal_fields(),
            DomainEvent::Team { event, .. } => event.personal_fields(),
            DomainEvent::Invitation { event, .. } => event.personal_fields(),
        }
    }

    /// The person whose key protects this event's personal data, if it has any.
    pub fn data_subject(&self) -> Option<Uuid> {
        match self {
            DomainEvent::User { user_id, event } if !event.personal_fields().is_empty() => {
                Some(*user_id)
            }
            // A login's user agent is the user's.
            DomainEvent::Session {
                event: SessionEvent::LoggedIn { user_id, .. },
                ..
            } => Some(*user_id),
            // The invitee's address is sealed with the key of the account it is for.
            DomainEvent::Invitation {
                event: InvitationEvent::Created { user_id, .. },
                ..
            } => Some(*user_id),
            _ => None,
        }
    }

    pub fn user(user_id: Uuid, events: Vec<UserEvent>) -> Vec<DomainEvent> {
        events
            .into_iter()
            .map(|event| DomainEvent::User { user_id, event })
            .collect()
    }

    pub fn session(session_id: Uuid, events: Vec<SessionEvent>) -> Vec<DomainEvent> {
        events
            .into_iter()
            .map(|event| DomainEvent::Session { session_id, event })
            .collect()
    }
}
