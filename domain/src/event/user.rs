//! Events of a user's stream: identity, profile, membership, credentials and the account's
//! end, with what reads them (the profile delta, the changed fields).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventKind;
use crate::Role;

/// Why a login attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
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

/// How an account came to be, when it is not by signing up or an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserSource {
    /// A bulk import created it, without a password.
    Import,
}

/// A one-time link sent by email: when it expires. Events keep only the token's hash, which
/// never leaves the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EmailLink {
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// Fields a profile update can clear (set to nothing).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ClearableField {
    Phone,
}

/// Events of a user's stream (aggregate id = user id). Everything about one user and their
/// membership lives here, so most commands append to a single stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    #[serde(rename = "user.created")]
    Created {
        user_id: Uuid,
        tenant_id: Uuid,
        email: String,
        display_name: String,
        password_hash: String,
        /// The link sent (with the welcome) to confirm the address; absent in events written
        /// before verification existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email_verification: Option<EmailLink>,
        /// How the account came to be, when not by signing up or an invitation: `import`
        /// (created by a bulk import, without a password).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<UserSource>,
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
    /// The user asked to move their account to `new_email`; a link to confirm it went there.
    #[serde(rename = "user.email_change_requested")]
    EmailChangeRequested {
        user_id: Uuid,
        new_email: String,
        token_hash: String,
        expires_at: DateTime<Utc>,
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
            UserEvent::EmailChangeRequested { .. } => "user.email_change_requested",
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
            UserEvent::EmailChangeRequested { .. } => &["new_email"],
            UserEvent::EmailChanged { .. } => &["old_email", "email"],
            _ => &[],
        }
    }
}
