//! The projections: one file per read model, each a pure function of the events applied in
//! order. A Postgres read model is a [`ReadModel`]: the statements that apply one event to
//! `<table><suffix>`, so a replay builds the same tables beside the live ones with the same
//! code. The search index and the email queue have their own files (`search`,
//! `crate::email::projection`).

#[macro_use]
pub mod statements;

mod activity;
pub mod audit;
mod invitations;
mod memberships;
pub mod search;
mod sessions;
mod teams;
mod tenants;
pub mod timers;
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
    /// Adds to the writer the statements that apply one event (personal data already
    /// opened) to the model's tables.
    fn statements(applying: Applying<'_, '_>) -> Applied;
}

/// One event to apply: where its statements go, the event as stored, and as the domain's.
pub struct Applying<'a, 'w>(
    pub &'a mut Writer<'w>,
    pub &'a RecordedEvent,
    pub &'a DomainEvent,
);

/// What applying an event to a read model answers.
pub type Applied = Result<(), HandlerError>;

/// The projections by name: the vocabulary the query API and the CLI share
/// (`read_models::ProjectionName`); what running one means is [`Projecting`].
pub use read_models::ProjectionName as Projection;

/// What handlers need beyond the event: the keys that open other streams' personal data
/// and the email policy.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub keys: &'a KeyRing,
    pub email: EmailPolicy,
}

/// What running a projection means: applying an event to its tables (the email queue's
/// through its own handler), and which events it needs opened.
pub trait Projecting {
    /// Applies one event (with personal data already decrypted) to the projection's tables.
    fn apply(
        &self,
        client: &Object,
        env: Env<'_>,
        event: &RecordedEvent,
        suffix: &str,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether the projection reads personal fields (names, email, phone): only then are an
    /// event's sealed fields opened for it.
    fn needs_personal_data(&self) -> bool;

    /// Whether an event's effect is a list of statements computed from the event alone, so
    /// that a page of events can be sent to Postgres at once.
    fn is_pipelined(&self) -> bool;

    /// Adds to `out` the statements that apply one event to the projection's tables
    /// (`<table><suffix>`).
    fn statements(
        &self,
        event: &RecordedEvent,
        suffix: &str,
        out: &mut Vec<Statement>,
    ) -> Result<(), HandlerError>;
}

impl Projecting for Projection {
    async fn apply(
        &self,
        client: &Object,
        env: Env<'_>,
        event: &RecordedEvent,
        suffix: &str,
    ) -> Result<(), HandlerError> {
        if *self == Projection::WebhookDeliveries {
            return crate::webhooks::projection::apply(client, event).await;
        }
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
    /// event's sealed fields opened for it. The others (memberships, activity,
    /// audit) never store personal data and skip the key lookups and decryption.
    fn needs_personal_data(&self) -> bool {
        matches!(
            self,
            Projection::Tenants
                | Projection::Users
                | Projection::Search
                | Projection::EmailJobs
                | Projection::Invitations
                | Projection::Sessions
        )
    }

    /// Whether an event's effect is a list of statements computed from the event alone
    /// (every Postgres read model, and the search index, which has none here), so that a
    /// page of events can be sent to Postgres at once. The email queue reads other streams.
    /// (A replay of the users model folds its pages instead: `crate::projections::users_fold`.)
    fn is_pipelined(&self) -> bool {
        !matches!(self, Projection::EmailJobs | Projection::WebhookDeliveries)
    }

    /// Adds to `out` the statements that apply one event (personal data already decrypted)
    /// to the projection's tables (`<table><suffix>`).
    fn statements(
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
            Projection::Tenants => {
                tenants::Tenants::statements(Applying(&mut writer, event, &domain))
            }
            Projection::Memberships => {
                memberships::Memberships::statements(Applying(&mut writer, event, &domain))
            }
            Projection::Sessions => {
                sessions::Sessions::statements(Applying(&mut writer, event, &domain))
            }
            Projection::Activity => {
                activity::Activity::statements(Applying(&mut writer, event, &domain))
            }
            Projection::Audit => audit::Audit::statements(Applying(&mut writer, event, &domain)),
            Projection::Users => users::Users::statements(Applying(&mut writer, event, &domain)),
            Projection::Teams => teams::Teams::statements(Applying(&mut writer, event, &domain)),
            Projection::Invitations => {
                invitations::Invitations::statements(Applying(&mut writer, event, &domain))
            }
            Projection::Timers => timers::Timers::statements(Applying(&mut writer, event, &domain)),
            // Not statements: see `is_pipelined`.
            Projection::Search | Projection::EmailJobs | Projection::WebhookDeliveries => Ok(()),
        }
    }
}
