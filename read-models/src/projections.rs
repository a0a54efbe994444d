//! The projections by name, the tables each owns, and where each stands: the vocabulary the
//! projector (which runs them) and the query API and CLI (which report on them) share.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use eventstore::Order;
use serde::Serialize;

/// The relay's name in `relay_checkpoints`.
pub const RELAY_NAME: &str = "jetstream";

/// Every projection the projector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectionName {
    Tenants,
    Users,
    Memberships,
    Sessions,
    Activity,
    Audit,
    Teams,
    Invitations,
    /// The durable timers the scheduler fires.
    Timers,
    /// The search index (Tantivy, on disk); not a Postgres read model.
    Search,
    /// The email queue: never replayed (a replay would mail people twice).
    EmailJobs,
    /// The webhooks and their delivery queue: never replayed (a replay would deliver every
    /// event again).
    WebhookDeliveries,
}

impl ProjectionName {
    /// Every projection, the search index and the email queue included.
    pub const EVERY: [ProjectionName; 12] = [
        ProjectionName::Tenants,
        ProjectionName::Users,
        ProjectionName::Memberships,
        ProjectionName::Sessions,
        ProjectionName::Activity,
        ProjectionName::Audit,
        ProjectionName::Teams,
        ProjectionName::Invitations,
        ProjectionName::Timers,
        ProjectionName::Search,
        ProjectionName::EmailJobs,
        ProjectionName::WebhookDeliveries,
    ];

    /// The Postgres read models (every projection but the search index and the email
    /// queue).
    pub const ALL: [ProjectionName; 9] = [
        ProjectionName::Tenants,
        ProjectionName::Users,
        ProjectionName::Memberships,
        ProjectionName::Sessions,
        ProjectionName::Activity,
        ProjectionName::Audit,
        ProjectionName::Teams,
        ProjectionName::Invitations,
        ProjectionName::Timers,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            ProjectionName::Tenants => "tenants",
            ProjectionName::Users => "users",
            ProjectionName::Memberships => "memberships",
            ProjectionName::Sessions => "sessions",
            ProjectionName::Activity => "activity",
            ProjectionName::Audit => "audit",
            ProjectionName::Teams => "teams",
            ProjectionName::Invitations => "invitations",
            ProjectionName::Timers => "timers",
            ProjectionName::Search => "search",
            ProjectionName::EmailJobs => "email-jobs",
            ProjectionName::WebhookDeliveries => "webhook-deliveries",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::EVERY.into_iter().find(|p| p.name() == name)
    }

    /// The tables the projection owns (each has a `tenant_id` column).
    pub fn tables(&self) -> &'static [&'static str] {
        match self {
            ProjectionName::Tenants => &["rm_tenants"],
            ProjectionName::Users => &["rm_users"],
            ProjectionName::Memberships => &["rm_memberships"],
            ProjectionName::Sessions => &["rm_sessions"],
            ProjectionName::Activity => &["rm_activity"],
            ProjectionName::Audit => &["rm_audit"],
            ProjectionName::Teams => &["rm_teams", "rm_team_members"],
            ProjectionName::Invitations => &["rm_invitations"],
            ProjectionName::Timers => &["timers"],
            ProjectionName::Search
            | ProjectionName::EmailJobs
            | ProjectionName::WebhookDeliveries => &[],
        }
    }

    /// What an operator should know about the projection, if anything.
    pub fn note(&self) -> Option<&'static str> {
        match self {
            ProjectionName::EmailJobs => {
                Some("queues emails; never replayed (a replay would send them again)")
            }
            ProjectionName::WebhookDeliveries => {
                Some("queues webhook deliveries; never replayed (a replay would deliver again)")
            }
            ProjectionName::Search => Some("Tantivy index; replay rebuilds a new generation"),
            ProjectionName::Timers => Some("what the scheduler fires when a time passes"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgressStatus {
    pub name: String,
    /// The last event applied (projections) or published (relay).
    pub position: i64,
    pub transaction_id: i64,
    /// Committed events not yet applied or published.
    pub lag_events: i64,
    /// Age of the oldest such event, in seconds (0 when caught up).
    pub lag_seconds: f64,
    pub dead_letters: i64,
    pub events_applied: i64,
    pub last_event_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The highest committed position in the event store.
    pub head_position: i64,
    pub events: i64,
    pub relay: ProgressStatus,
    pub projections: Vec<ProgressStatus>,
    /// Email jobs by state.
    pub email_jobs: std::collections::BTreeMap<String, i64>,
}

async fn lag(client: &Object, after: Order) -> Result<(i64, f64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at))::float8, 0)
               FROM events
              WHERE (transaction_id, position) > ($1::bigint::text::xid8, $2)",
            &[&after.transaction_id, &after.position],
        )
        .await?;
    Ok((row.get(0), row.get::<_, f64>(1).max(0.0)))
}

/// Where the relay and every projection stand, with the email queue by state.
pub async fn status(client: &Object) -> Result<Status, tokio_postgres::Error> {
    let head = client
        .query_one(
            "SELECT coalesce(max(position), 0), count(*) FROM events",
            &[],
        )
        .await?;
    let relay_row = client
        .query_opt(
            "SELECT last_transaction_id, last_position, updated_at FROM relay_checkpoints WHERE relay = $1",
            &[&RELAY_NAME],
        )
        .await?;
    let relay_after = relay_row
        .as_ref()
        .map_or(Order::START, |r| Order::new(r.get(0), r.get(1)));
    let (relay_lag, relay_seconds) = lag(client, relay_after).await?;
    let relay = ProgressStatus {
        name: "relay".into(),
        position: relay_after.position,
        transaction_id: relay_after.transaction_id,
        lag_events: relay_lag,
        lag_seconds: relay_seconds,
        dead_letters: 0,
        events_applied: 0,
        last_event_at: relay_row.as_ref().map(|r| r.get(2)),
        note: Some("publishes the event store to JetStream".into()),
    };
    let mut projections = Vec::new();
    for projection in ProjectionName::EVERY {
        let row = client
            .query_opt(
                "SELECT last_transaction_id, last_position, events_applied, last_event_at
                   FROM projection_checkpoints WHERE projection = $1",
                &[&projection.name()],
            )
            .await?;
        let after = row
            .as_ref()
            .map_or(Order::START, |r| Order::new(r.get(0), r.get(1)));
        let (lag_events, lag_seconds) = lag(client, after).await?;
        let dead_letters: i64 = client
            .query_one(
                "SELECT count(*) FROM dead_letters WHERE projection = $1",
                &[&projection.name()],
            )
            .await?
            .get(0);
        projections.push(ProgressStatus {
            name: projection.name().into(),
            position: after.position,
            transaction_id: after.transaction_id,
            lag_events,
            lag_seconds,
            dead_letters,
            events_applied: row.as_ref().map_or(0, |r| r.get(2)),
            last_event_at: row.as_ref().and_then(|r| r.get(3)),
            note: projection.note().map(str::to_owned),
        });
    }
    Ok(Status {
        head_position: head.get(0),
        events: head.get(1),
        relay,
        projections,
        email_jobs: email_job_counts(client).await?.into_iter().collect(),
    })
}

/// How many email jobs are in each state (every state listed, zero included).
pub async fn email_job_counts(
    client: &tokio_postgres::Client,
) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT s.status, count(j.job_id)
               FROM unnest($1::text[]) AS s(status)
               LEFT JOIN email_jobs j ON j.status = s.status
              GROUP BY s.status ORDER BY s.status",
            &[&infra::email_jobs::STATUSES.to_vec()],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
