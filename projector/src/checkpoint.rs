//! What every projection shares: its checkpoint in `projection_checkpoints` (locked while a
//! batch applies, saved with the batch) and the dead letter an event that cannot be applied
//! becomes.

use deadpool_postgres::Object;
use eventstore::{Order, RecordedEvent};

use crate::projections::Projection;

/// The checkpoint of a projection, locked for the rest of the transaction (this also
/// serialises a live batch with a replay's switch-over).
pub async fn lock_checkpoint(
    client: &Object,
    projection: Projection,
) -> Result<Order, tokio_postgres::Error> {
    let select = client
        .prepare_cached(
            "SELECT last_transaction_id, last_position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
        )
        .await?;
    if let Some(row) = client.query_opt(&select, &[&projection.name()]).await? {
        return Ok(Order::new(row.get(0), row.get(1)));
    }
    // The projection's first batch.
    client
        .execute(
            "INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&projection.name()],
        )
        .await?;
    let row = client.query_one(&select, &[&projection.name()]).await?;
    Ok(Order::new(row.get(0), row.get(1)))
}

pub async fn save_checkpoint(
    client: &Object,
    projection: Projection,
    checkpoint: Order,
    applied: i64,
    last_event_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "UPDATE projection_checkpoints SET last_transaction_id = $2, last_position = $3,
                    events_applied = events_applied + $4, last_event_at = coalesce($5, last_event_at),
                    updated_at = now()
              WHERE projection = $1",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &projection.name(),
                &checkpoint.transaction_id,
                &checkpoint.position,
                &applied,
                &last_event_at,
            ],
        )
        .await?;
    Ok(())
}

/// The envelope a dead letter keeps: every id, the type and the metadata, and the names of
/// the data's fields without their values. The values may be personal (opened for the
/// projection) and a dead letter outlives an erasure; a retry reads the event from the event
/// store again, so nothing is lost by leaving them out.
pub fn withheld_envelope(event: &RecordedEvent) -> serde_json::Value {
    let mut envelope = event.envelope();
    if let Some(serde_json::Value::Object(data)) = envelope.get_mut("data") {
        for value in data.values_mut() {
            *value = serde_json::Value::String("[withheld]".into());
        }
    }
    envelope
}

/// Records an event the projection could not apply; the projection moves past it.
pub async fn dead_letter_event(
    client: &Object,
    projection: Projection,
    event: &RecordedEvent,
    reason: &str,
    deliveries: i64,
) -> Result<(), tokio_postgres::Error> {
    {
        {
            tracing::error!(
                projection = projection.name(),
                event_id = %event.event_id,
                tenant_id = %event.tenant_id,
                error = %reason,
                "event dead-lettered"
            );
            metrics::counter!("eventra_projection_dead_letters_total", "projection" => projection.name()).increment(1);
            client
                .execute(
                    "INSERT INTO dead_letters (projection, event_id, tenant_id, position, subject, payload, error, deliveries)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &projection.name(),
                        &event.event_id,
                        &event.tenant_id,
                        &event.position,
                        &event.event_type,
                        &withheld_envelope(event).to_string(),
                        &reason,
                        &deliveries,
                    ],
                )
                .await?;
            Ok(())
        }
    }
}
