//! Where each projection and the relay stand, compared with the event store's head.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use serde::Serialize;

use crate::projections::Projection;
use crate::relay::RELAY_NAME;

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

async fn lag(client: &Object, after: (i64, i64)) -> Result<(i64, f64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at))::float8, 0)
               FROM events
              WHERE (transaction_id, position) > ($1::bigint::text::xid8, $2)",
            &[&after.0, &after.1],
        )
        .await?;
    Ok((row.get(0), row.get::<_, f64>(1).max(0.0)))
}

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
    let relay_after = relay_row.as_ref().map_or((0, 0), |r| (r.get(0), r.get(1)));
    let (relay_lag, relay_seconds) = lag(client, relay_after).await?;
    let relay = ProgressStatus {
        name: "relay".into(),
        position: relay_after.1,
        transaction_id: relay_after.0,
        lag_events: relay_lag,
        lag_seconds: relay_seconds,
        dead_letters: 0,
        events_applied: 0,
        last_event_at: relay_row.as_ref().map(|r| r.get(2)),
        note: Some("publishes the event store to JetStream".into()),
    };
    let mut projections = Vec::new();
    for projection in Projection::EVERY {
        let row = client
            .query_opt(
                "SELECT last_transaction_id, last_position, events_applied, last_event_at
                   FROM projection_checkpoints WHERE projection = $1",
                &[&projection.name()],
            )
            .await?;
        let after = row.as_ref().map_or((0, 0), |r| (r.get(0), r.get(1)));
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
            position: after.1,
            transaction_id: after.0,
            lag_events,
            lag_seconds,
            dead_letters,
            events_applied: row.as_ref().map_or(0, |r| r.get(2)),
            last_event_at: row.as_ref().and_then(|r| r.get(3)),
            note: match projection {
                Projection::EmailJobs => {
                    Some("queues emails; never replayed (a replay would send them again)".into())
                }
                Projection::Search => {
                    Some("Tantivy index; replay rebuilds a new generation".into())
                }
                _ => None,
            },
        });
    }
    let email_jobs = crate::email_worker::counts(client)
        .await?
        .into_iter()
        .collect();
    Ok(Status {
        head_position: head.get(0),
        events: head.get(1),
        relay,
        projections,
        email_jobs,
    })
}
