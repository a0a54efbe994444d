//! A webhook whose endpoint has failed every attempt for longer than the operator's limit
//! (`WEBHOOK_DISABLE_AFTER_HOURS`, a day by default) is turned off by the system: the worker
//! that records such a failure appends `webhook.disabled` (optimistically: of two workers
//! deciding at once, one appends and the other finds it off already). Its deliveries wait;
//! the email projection tells each admin of the tenant.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::Webhook;
use eventstore::{Changes, EventMetadata, EventStore};
use infra::crypto::KeyRing;
use uuid::Uuid;

/// The `source` of what the webhook workers append.
pub const SOURCE: &str = "eventra-webhooks";

/// The first failed attempt of the webhook since its last successful delivery or since it
/// was last turned on, whichever came later (`None`: no failure since).
pub async fn failing_since(
    pool: &Pool,
    webhook_id: Uuid,
) -> Result<Option<DateTime<Utc>>, anyhow::Error> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "WITH attempts AS (
                 SELECT a.started_at, a.outcome FROM webhook_delivery_attempts a
                   JOIN webhook_deliveries d ON d.delivery_id = a.delivery_id
                  WHERE d.webhook_id = $1)
             SELECT min(started_at) FROM attempts
              WHERE outcome <> 'delivered'
                AND started_at > greatest(
                    (SELECT max(started_at) FROM attempts WHERE outcome = 'delivered'),
                    (SELECT enabled_at FROM rm_webhooks WHERE webhook_id = $1),
                    '-infinity')",
            &[&webhook_id],
        )
        .await?;
    Ok(row.get(0))
}

/// Turns the webhook off when it has been failing for longer than `limit`; whether this call
/// did.
pub async fn disable_if_failing_too_long(
    pool: &Pool,
    keys: &Arc<KeyRing>,
    webhook_id: Uuid,
    tenant_id: Uuid,
    limit: Duration,
    last_error: &str,
) -> Result<bool, anyhow::Error> {
    let Some(since) = failing_since(pool, webhook_id).await? else {
        return Ok(false);
    };
    let limit = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
    if Utc::now() - since < limit {
        return Ok(false);
    }
    let store = EventStore::new(pool.clone(), Arc::clone(keys));
    let transaction = store.begin().await?;
    let webhook = transaction.reader().load::<Webhook>(webhook_id).await?;
    let events = domain::webhook::disable_failing(&webhook.state, since, last_error);
    if events.is_empty() {
        transaction.rollback().await;
        return Ok(false);
    }
    let metadata = EventMetadata {
        source: SOURCE.to_owned(),
        correlation_id: Some(format!("webhook-failing:{webhook_id}")),
        ..EventMetadata::default()
    };
    let appended = transaction
        .append(
            Changes::new(tenant_id, Utc::now()).appending(&webhook, events),
            &metadata,
        )
        .await;
    match appended {
        Ok(appended) => {
            transaction.commit().await?;
            metrics::counter!("eventra_webhooks_disabled_total").increment(1);
            if let Some(event) = appended.first() {
                tracing::warn!(%webhook_id, %tenant_id, event_id = %event.event_id,
                    failing_since = %since, "webhook disabled: every attempt failed for too long");
            }
            Ok(true)
        }
        // Another worker turned it off first.
        Err(eventstore::StoreError::Conflict { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}
