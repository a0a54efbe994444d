//! The projections: one file per read model, each a pure function of the events applied in
//! order. A Postgres read model is a [`ReadModel`]: the statements that apply one event to
//! `<table><suffix>`, so a replay builds the same tables beside the live ones with the same
//! code. The search index and the email queue have their own files (`search`,
//! `crate::email::projection`).

#[macro_use]
pub mod statements;

mod activity;
pub mod audit;
mod memberships;
pub mod search;
mod sessions;
mod tenants;
mod users;
pub mod users_fold;

use deadpool_postgres::Object;
use domain::DomainEvent;
use eventstore::RecordedEvent;
use infra::crypto::KeyRing;

use crate::email::projection::EmailPolicy;
use crate::error::HandlerError;
use statements::{Statement, Writer, execute_pipelined};

/// A Postgres read model.
pub trait ReadModel {
    /// Adds to `writer` the statements that apply one event (personal data already opened)
    /// to the model's tables.
    fn statements(
        writer: &mut Writer<'_>,
        event: &RecordedEvent,
        domain: &DomainEvent,
    ) -> Result<(), HandlerError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Projection {
    Tenants,
    Users,
    Memberships,
    Sessions,
    Activity,
    Audit,
    /// The search index (Tantivy, on disk); not a Postgres read model.
    Search,
    /// The email queue: never replayed (a replay would mail people twice).
    EmailJobs,
}

/// What handlers need beyond the event: the keys that open other streams' personal data
/// and the email policy.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub keys: &'a KeyRing,
    pub email: EmailPolicy,
}

impl Projection {
    /// Every projection, the search index and the email queue included.
    pub const EVERY: [Projection; 8] = [
        Projection::Tenants,
        Projection::Users,
        Projection::Memberships,
        Projection::Sessions,
        Projection::Activity,
        Projection::Audit,
        Projection::Search,
        Projection::EmailJobs,
    ];

    /// The Postgres read models.
    pub const ALL: [Projection; 6] = [
        Projection::Tenants,
        Projection::Users,
        Projection::Memberships,
        Projection::Sessions,
        Projection::Activity,
        Projection::Audit,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Projection::Tenants => "tenants",
            Projection::Users => "users",
            Projection::Memberships => "memberships",
            Projection::Sessions => "sessions",
            Projection::Activity => "activity",
            Projection::Audit => "audit",
            Projection::Search => "search",
            Projection::EmailJobs => "email-jobs",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::EVERY.into_iter().find(|p| p.name() == name)
    }

    /// The tables the projection owns (each has a `tenant_id` column).
    pub fn tables(&self) -> &'static [&'static str] {
        match self {
            Projection::Tenants => &["rm_tenants"],
            Projection::Users => &["rm_users"],
            Projection::Memberships => &["rm_memberships"],
            Projection::Sessions => &["rm_sessions"],
            Projection::Activity => &["rm_activity"],
            Projection::Audit => &["rm_audit"],
            Projection::Search | Projection::EmailJobs => &[],
        }
    }

    /// Applies one event (with personal data already decrypted) to the projection's tables.
    pub async fn apply(
        &self,
        client: &Object,
        env: Env<'_>,
        event: &RecordedEvent,
        suffix: &str,
    ) -> Result<(), HandlerError> {
        if *self == Projection::EmailJobs {
            let domain = event
                .to_domain()
                .map_err(|e| HandlerError::Poison(e.to_string()))?;
            return crate::email::projection::apply(client, env.keys, &env.email, event, &domain)
                .await;
        }
        let mut statements = Vec::new();
        self.statements(event, suffix, &mut statements)?;
        execute_pipelined(client, &statements).await
    }

    /// Whether the projection reads personal fields (names, email, phone): only then are an
    /// event's sealed fields opened for it. The others (memberships, sessions, activity,
    /// audit) never store personal data and skip the key lookups and decryption.
    pub fn needs_personal_data(&self) -> bool {
        matches!(
            self,
            Projection::Tenants | Projection::Users | Projection::Search | Projection::EmailJobs
        )
    }

    /// Whether an event's effect is a list of statements computed from the event alone
    /// (every Postgres read model, and the search index, which has none here), so that a
    /// page of events can be sent to Postgres at once. The email queue reads other streams.
    /// (A replay of the users model folds its pages instead: `crate::projections::users_fold`.)
    pub fn is_pipelined(&self) -> bool {
        *self != Projection::EmailJobs
    }

    /// Adds to `out` the statements that apply one event (personal data already decrypted)
    /// to the projection's tables (`<table><suffix>`).
    pub fn statements(
        &self,
        event: &RecordedEvent,
        suffix: &str,
        out: &mut Vec<Statement>,
    ) -> Result<(), HandlerError> {
        let domain = event
            .to_domain()
            .map_err(|e| HandlerError::Poison(e.to_string()))?;
        let mut writer = Writer { suffix, out };
        match self {
            Projection::Tenants => tenants::Tenants::statements(&mut writer, event, &domain),
            Projection::Memberships => {
                memberships::Memberships::statements(&mut writer, event, &domain)
            }
            Projection::Sessions => sessions::Sessions::statements(&mut writer, event, &domain),
            Projection::Activity => activity::Activity::statements(&mut writer, event, &domain),
            Projection::Audit => audit::Audit::statements(&mut writer, event, &domain),
            Projection::Users => users::Users::statements(&mut writer, event, &domain),
            // Not statements: see `is_pipelined`.
            Projection::Search | Projection::EmailJobs => Ok(()),
        }
    }
}
