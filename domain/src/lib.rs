//! The pure core of Eventra.
//!
//! Commands are decided against an aggregate's state into past-tense events; state is
//! rebuilt by applying events, and applying holds no business logic. Nothing here does I/O,
//! reads a clock or generates an id: time, ids and the actor arrive in a [`Context`] or in
//! the command itself, so every decision is deterministic and testable.

pub mod error;
pub mod event;
pub mod import;
pub mod invitation;
pub mod lifecycle;
pub mod links;
pub mod lockout;
pub mod members;
pub mod session;
pub mod team;
pub mod tenant;
pub mod user;
pub mod values;
pub mod webhook;

pub use error::DomainError;
pub use event::{
    DomainEvent, EventKind, ImportEvent, InvitationEvent, SessionEvent, TeamEvent, TenantEvent,
    UserEvent, WebhookEvent,
};
pub use import::Import;
pub use invitation::Invitation;
pub use members::TenantMembers;
pub use session::Session;
pub use team::Team;
pub use tenant::Tenant;
pub use user::User;
pub use values::{Plan, Role, SignupPolicy, UserStatus};
pub use webhook::Webhook;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Who is acting, and when. Supplied by the caller of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub now: DateTime<Utc>,
    pub actor: Actor,
}

/// The principal on whose behalf a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// Nobody is authenticated (signup, login).
    Anonymous,
    /// An authenticated user of a tenant.
    User {
        user_id: Uuid,
        tenant_id: Uuid,
        role: Role,
    },
    /// An operator with global oversight; bypasses tenant permission checks.
    PlatformAdmin { user_id: Uuid },
}

impl Actor {
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Actor::Anonymous => None,
            Actor::User { user_id, .. } | Actor::PlatformAdmin { user_id } => Some(*user_id),
        }
    }
}
