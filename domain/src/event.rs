//! The events of each aggregate: past-tense facts, named `<area>.<fact>` as in the
//! published contract. Each enum serialises as `{"type": ..., "data": {...}}`; the event
//! store splits the two into columns. Teams and invitations have their own streams
//! (`event/team.rs`, `event/invitation.rs`). Every type is at schema version 1; older versions
//! are upcast on read by the store, so these types only ever see the current shape.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Plan;
use crate::values::SignupPolicy;

mod import;
mod invitation;
mod team;
mod user;
mod webhook;

pub use import::{ImportCounts, ImportEvent, RowError};
pub use invitation::InvitationEvent;
pub use team::{TeamDeparture, TeamEvent};
pub use user::{
    EmailLink, FieldChange, LoginFailure, ProfileDelta, ProfileField, RemovalReason, UserEvent,
    UserSource,
};
pub use webhook::WebhookEvent;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// Why a session ended before its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    Import {
        import_id: Uuid,
        event: ImportEvent,
    },
    Webhook {
        webhook_id: Uuid,
        event: WebhookEvent,
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
            DomainEvent::Import { .. } => ImportEvent::AGGREGATE_TYPE,
            DomainEvent::Webhook { .. } => WebhookEvent::AGGREGATE_TYPE,
        }
    }

    pub fn aggregate_id(&self) -> Uuid {
        match self {
            DomainEvent::Tenant { tenant_id, .. } => *tenant_id,
            DomainEvent::User { user_id, .. } => *user_id,
            DomainEvent::Session { session_id, .. } => *session_id,
            DomainEvent::Team { team_id, .. } => *team_id,
            DomainEvent::Invitation { invitation_id, .. } => *invitation_id,
            DomainEvent::Import { import_id, .. } => *import_id,
            DomainEvent::Webhook { webhook_id, .. } => *webhook_id,
        }
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::Tenant { event, .. } => event.event_type(),
            DomainEvent::User { event, .. } => event.event_type(),
            DomainEvent::Session { event, .. } => event.event_type(),
            DomainEvent::Team { event, .. } => event.event_type(),
            DomainEvent::Invitation { event, .. } => event.event_type(),
            DomainEvent::Import { event, .. } => event.event_type(),
            DomainEvent::Webhook { event, .. } => event.event_type(),
        }
    }

    pub fn schema_version(&self) -> i32 {
        match self {
            DomainEvent::Tenant { event, .. } => event.schema_version(),
            DomainEvent::User { event, .. } => event.schema_version(),
            DomainEvent::Session { event, .. } => event.schema_version(),
            DomainEvent::Team { event, .. } => event.schema_version(),
            DomainEvent::Invitation { event, .. } => event.schema_version(),
            DomainEvent::Import { event, .. } => event.schema_version(),
            DomainEvent::Webhook { event, .. } => event.schema_version(),
        }
    }

    pub fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            DomainEvent::Tenant { event, .. } => event.personal_fields(),
            DomainEvent::User { event, .. } => event.personal_fields(),
            DomainEvent::Session { event, .. } => event.personal_fields(),
            DomainEvent::Team { event, .. } => event.personal_fields(),
            DomainEvent::Invitation { event, .. } => event.personal_fields(),
            DomainEvent::Import { event, .. } => event.personal_fields(),
            DomainEvent::Webhook { event, .. } => event.personal_fields(),
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
