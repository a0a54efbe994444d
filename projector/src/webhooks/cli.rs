//! Operating on webhook deliveries: list them, send dead ones again
//! (`projector webhook-deliveries …`); tenant admins do the same through the API.

use anyhow::bail;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub position: i64,
    pub status: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub fn parse_status(status: &str) -> anyhow::Result<&'static str> {
    let statuses = &infra::webhooks::DELIVERY_STATUSES;
    match statuses.iter().find(|s| **s == status) {
        Some(status) => Ok(status),
        None => bail!("unknown status {status:?}; one of {}", statuses.join(", ")),
    }
}

/// Deliveries, oldest first.
pub async fn list(
    pool: &Pool,
    status: Option<&str>,
    tenant_id: Option<Uuid>,
    limit: i64,
) -> anyhow::Result<Vec<DeliveryView>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT delivery_id, webhook_id, tenant_id, event_id, event_type, position, status,
                    attempts, last_status, last_error, created_at, due_at, delivered_at
               FROM webhook_deliveries
              WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR tenant_id = $2)
              ORDER BY seq LIMIT $3",
            &[&status, &tenant_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| DeliveryView {
            delivery_id: row.get(0),
            webhook_id: row.get(1),
            tenant_id: row.get(2),
            event_id: row.get(3),
            event_type: row.get(4),
            position: row.get(5),
            status: row.get(6),
            attempts: row.get(7),
            last_status: row.get(8),
            last_error: row.get(9),
            created_at: row.get(10),
            due_at: row.get(11),
            delivered_at: row.get(12),
        })
        .collect())
}

/// Sends dead deliveries again with a fresh set of attempts (the same `webhook-id`; their
/// attempt history stays): the named ones, or every dead one. Returns how many.
pub async fn retry(pool: &Pool, ids: &[Uuid], all_dead: bool) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "UPDATE webhook_deliveries
                SET status = 'pending', attempts = 0, due_at = now(), last_error = NULL,
                    updated_at = now()
              WHERE status = 'dead' AND ($2 OR delivery_id = ANY($1))",
            &[&ids, &all_dead],
        )
        .await?)
}
