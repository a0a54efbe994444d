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

/// A profile field a `user.profile_updated` changes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    DisplayName,
    Phone,
    Locale,
}

impl ProfileField {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileField::DisplayName => "display_name",
            ProfileField::Phone => "phone",
            ProfileField::Locale => "locale",
        }
    }
}

/// A field that is absent (unchanged), `null` (cleared) or a value (set).
mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Option<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value
            .as_ref()
            .and_then(Option::as_ref)
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
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
    /// Version 2: `changed` names the fields the update changes; each of them is present with
    /// its new value, `null` when it was cleared (version 1 had a separate `cleared` list and
    /// is upcast on read).
    #[serde(rename = "user.profile_updated")]
    ProfileUpdated {
        user_id: Uuid,
        /// The fields changed, in the order display_name, phone, locale.
        changed: Vec<ProfileField>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        /// The new number, or `null` when it was cleared.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
        #[schemars(with = "Option<String>")]
        phone: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
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
    /// A `user.profile_updated` setting `display_name` and `locale` where given and setting
    /// (`Some(Some(_))`) or clearing (`Some(None)`) the phone; `None` when it changes nothing.
    pub fn profile_updated(
        user_id: Uuid,
        display_name: Option<String>,
        phone: Option<Option<String>>,
        locale: Option<String>,
        updated_by: Uuid,
    ) -> Option<UserEvent> {
        let changed: Vec<ProfileField> = [
            (ProfileField::DisplayName, display_name.is_some()),
            (ProfileField::Phone, phone.is_some()),
            (ProfileField::Locale, locale.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect();
        (!changed.is_empty()).then_some(UserEvent::ProfileUpdated {
            user_id,
            changed,
            display_name,
            phone,
            locale,
            updated_by,
        })
    }

    /// What a `user.profile_updated` changes; `None` for every other event.
    pub fn profile_delta(&self) -> Option<ProfileDelta<'_>> {
        let UserEvent::ProfileUpdated {
            display_name,
            phone,
            locale,
            ..
        } = self
        else {
            return None;
        };
        let phone = match phone {
            None => FieldChange::Keep,
            Some(None) => FieldChange::Clear,
            Some(Some(number)) => FieldChange::Set(number),
        };
        Some(ProfileDelta {
            display_name: display_name.as_deref(),
            phone,
            locale: locale.as_deref(),
        })
    }

    /// The profile fields a `user.profile_updated` changes, in a fixed order (what the
    /// activity log and the profile notice name, even once the values are erased); empty for
    /// every other event.
    pub fn changed_fields(&self) -> Vec<&'static str> {
        match self {
            UserEvent::ProfileUpdated { changed, .. } => {
                changed.iter().map(|field| field.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl EventKind for UserEvent {
    const AGGREGATE_TYPE: &'static str = "user";
    fn schema_version(&self) -> i32 {
        match self {
            UserEvent::ProfileUpdated { .. } => 2,
            _ => 1,
        }
    }
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
