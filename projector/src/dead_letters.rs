//! Operating on dead letters: list them, retry (re-drive) them, discard them.

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use infra::crypto::KeyRing;
use serde::Serialize;
use uuid::Uuid;

use crate::projections::Projection;
use crate::replay::replay;

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub projection: String,
    pub event_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub position: Option<i64>,
    pub subject: String,
    pub error: String,
    pub deliveries: i64,
    pub failed_at: DateTime<Utc>,
}

pub async fn list(
    pool: &Pool,
    projection: Option<Projection>,
    limit: i64,
) -> anyhow::Result<Vec<DeadLetter>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, projection, event_id, tenant_id, position, subject, error, deliveries, failed_at
               FROM dead_letters WHERE ($1::text IS NULL OR projection = $1) ORDER BY id LIMIT $2",
            &[&projection.map(|p| p.name()), &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| DeadLetter {
            id: row.get(0),
            projection: row.get(1),
            event_id: row.get(2),
            tenant_id: row.get(3),
            position: row.get(4),
            subject: row.get(5),
            error: row.get(6),
            deliveries: row.get(7),
            failed_at: row.get(8),
        })
        .collect())
}

pub async fn discard(pool: &Pool, id: i64) -> anyhow::Result<()> {
    let client = pool.get().await?;
    if client
        .execute("DELETE FROM dead_letters WHERE id = $1", &[&id])
        .await?
        == 0
    {
        bail!("no dead letter {id}");
    }
    Ok(())
}

/// What a retry came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The event now applies; the dead letter is gone.
    Resolved,
    /// The event failed again; a new dead letter records the new error.
    StillFailing,
}

/// Re-drives a dead letter: the projection's rows of the event's tenant are rebuilt from
/// the event store (so the event lands in its right place among the events after it).
pub async fn retry(pool: &Pool, keys: &KeyRing, id: i64) -> anyhow::Result<RetryOutcome> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT projection, event_id, tenant_id FROM dead_letters WHERE id = $1",
            &[&id],
        )
        .await?
        .with_context(|| format!("no dead letter {id}"))?;
    let projection_name: String = row.get(0);
    let projection = Projection::from_name(&projection_name)
        .with_context(|| format!("unknown projection {projection_name}"))?;
    let event_id: Option<Uuid> = row.get(1);
    let stored = match event_id {
        Some(event_id) => client
            .query_opt(
                "SELECT tenant_id FROM events WHERE event_id = $1",
                &[&event_id],
            )
            .await?
            .map(|r| r.get::<_, Uuid>(0)),
        None => None,
    };
    let (Some(event_id), Some(tenant_id)) = (event_id, stored) else {
        bail!(
            "dead letter {id} is not an event of the event store (a malformed message); discard it"
        );
    };
    let newest: i64 = client
        .query_one("SELECT coalesce(max(id), 0) FROM dead_letters", &[])
        .await?
        .get(0);
    replay(pool, keys, projection, Some(tenant_id), false).await?;
    let again: i64 = client
        .query_one(
            "SELECT count(*) FROM dead_letters WHERE id > $1 AND projection = $2 AND event_id = $3",
            &[&newest, &projection.name(), &event_id],
        )
        .await?
        .get(0);
    client
        .execute("DELETE FROM dead_letters WHERE id = $1", &[&id])
        .await?;
    Ok(if again == 0 {
        RetryOutcome::Resolved
    } else {
        RetryOutcome::StillFailing
    })
}
