//! Applying one fetched batch to a group of projections in one transaction (ADR 32): the
//! checkpoints locked together (in name order, so that groups sharing a projection never
//! deadlock), personal data opened once for every projection that reads it, each
//! projection's page under a savepoint of its own, every checkpoint saved with it, one
//! commit. A projection whose own statements fail (its table full, a trigger refusing) is
//! rolled back to its savepoint and left behind; the others commit. It is caught up from
//! the event store later (`crate::runtime`), so nothing is skipped.

use std::collections::HashMap;

use async_nats::jetstream::Message;
use deadpool_postgres::{Object, Pool};
use eventstore::{
    Order, ReadRange, RecordedEvent, StoreError, decrypt_personal_data, read_in_order,
};
use infra::crypto::KeyRing;
use infra::db::PgTransaction;

use crate::checkpoint::dead_letter_event;
use crate::page::{Applier, apply_page};
use crate::projections::{Env, Projecting as _, Projection};

/// A message as received: the event it carries, or why it could not be read.
pub struct Incoming {
    pub message: Message,
    pub event: Result<(RecordedEvent, Order), String>,
    /// Published by another event store (a stream left over from another database).
    pub foreign: bool,
}

/// A failure of the infrastructure (never of an event): retried, never skipped.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Begin(#[from] infra::db::BeginError),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a batch did to the group.
pub struct Outcome {
    /// Each projection that applied the batch.
    pub applied: Vec<Applied>,
    /// The projections whose own statements failed, with the error; they applied nothing.
    pub behind: Vec<(Projection, String)>,
}

/// What one projection applied: its new checkpoint, how many events, and the time of the
/// last.
pub struct Applied {
    pub projection: Projection,
    pub checkpoint: Order,
    pub applied: i64,
    pub last_event_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Applies a batch to `projections` in one transaction.
pub async fn apply_group(
    projections: &[Projection],
    pool: &Pool,
    env: Env<'_>,
    batch: &[Incoming],
) -> Result<Outcome, BatchError> {
    let transaction = PgTransaction::begin(pool).await?;
    let client = transaction.client();
    let checkpoints = lock_checkpoints(client, projections).await?;
    for incoming in batch.iter().filter(|i| i.foreign) {
        tracing::warn!(
            subject = %incoming.message.subject,
            "ignoring a message published by another event store"
        );
    }
    let opened = if projections.iter().any(|p| p.needs_personal_data()) {
        open_batch(client, env.keys, batch).await?
    } else {
        Vec::new()
    };
    let mut outcome = Outcome {
        applied: Vec::with_capacity(projections.len()),
        behind: Vec::new(),
    };
    for &projection in projections {
        let checkpoint = checkpoints
            .get(projection.name())
            .copied()
            .unwrap_or_default();
        // (Not released: the commit releases them all, and a later one of the same name
        // shadows it, so a rollback below reaches this projection's own.)
        client.batch_execute("SAVEPOINT projection").await?;
        match apply_to(client, projection, env, batch, &opened, checkpoint).await {
            Ok(applied) => {
                outcome.applied.push(applied);
            }
            Err(BatchError::Database(error)) if !error.is_closed() => {
                // The projection's own statements failed; if the connection is gone too,
                // this fails as well and the whole batch is retried.
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT projection")
                    .await?;
                outcome.behind.push((projection, error.to_string()));
            }
            Err(error) => return Err(error),
        }
    }
    save_checkpoints(client, &outcome.applied).await?;
    transaction.commit().await?;
    for Applied {
        projection,
        applied,
        ..
    } in &outcome.applied
    {
        metrics::counter!("eventra_projection_events_applied_total", "projection" => projection.name())
            .increment(*applied as u64);
    }
    Ok(outcome)
}

/// Locks the checkpoints of `projections` in name order (creating the missing ones).
async fn lock_checkpoints(
    client: &Object,
    projections: &[Projection],
) -> Result<HashMap<String, Order>, tokio_postgres::Error> {
    let mut names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    names.sort_unstable();
    let select = client
        .prepare_cached(
            "SELECT projection, last_transaction_id, last_position FROM projection_checkpoints
              WHERE projection = ANY($1) ORDER BY projection FOR UPDATE",
        )
        .await?;
    let mut rows = client.query(&select, &[&names]).await?;
    if rows.len() < names.len() {
        // A projection's first batch.
        client
            .execute(
                "INSERT INTO projection_checkpoints (projection) SELECT unnest($1::text[])
                 ON CONFLICT DO NOTHING",
                &[&names],
            )
            .await?;
        rows = client.query(&select, &[&names]).await?;
    }
    Ok(rows
        .iter()
        .map(|row| (row.get(0), Order::new(row.get(1), row.get(2))))
        .collect())
}

/// Each message's event with its personal data opened (or why it could not be), in the
/// batch's order; `None` for a message that carries no event.
async fn open_batch(
    client: &Object,
    keys: &KeyRing,
    batch: &[Incoming],
) -> Result<Vec<Option<Result<RecordedEvent, String>>>, StoreError> {
    let mut events: Vec<RecordedEvent> = batch
        .iter()
        .filter(|i| !i.foreign)
        .filter_map(|i| i.event.as_ref().ok().map(|(event, _)| event.clone()))
        .collect();
    let mut results = decrypt_personal_data(client, keys, &mut events)
        .await?
        .into_iter()
        .zip(events)
        .map(|(result, event)| result.map(|()| event).map_err(|e| e.to_string()));
    Ok(batch
        .iter()
        .map(|i| {
            if i.foreign || i.event.is_err() {
                None
            } else {
                results.next()
            }
        })
        .collect())
}

/// An event on its way to one projection.
enum Pending {
    Ready(RecordedEvent),
    /// Read from the event store to fill a gap: its personal data still sealed.
    Sealed(RecordedEvent),
    Unopenable(RecordedEvent, String),
}

/// Applies the batch to one projection from `checkpoint` on (its checkpoint is saved by
/// the caller).
async fn apply_to(
    client: &Object,
    projection: Projection,
    env: Env<'_>,
    batch: &[Incoming],
    opened: &[Option<Result<RecordedEvent, String>>],
    mut checkpoint: Order,
) -> Result<Applied, BatchError> {
    let personal = projection.needs_personal_data();
    let mut applied = 0i64;
    let mut last_event_at = None;
    let mut pending: Vec<(Pending, i64)> = Vec::with_capacity(batch.len());
    for (index, incoming) in batch.iter().enumerate() {
        if incoming.foreign {
            continue;
        }
        let delivered = incoming
            .message
            .info()
            .map(|info| info.delivered)
            .unwrap_or(1);
        let (event, previous) = match &incoming.event {
            Ok(parsed) => parsed,
            Err(reason) => {
                dead_letter_message(client, projection, &incoming.message, reason, delivered)
                    .await?;
                continue;
            }
        };
        if event.order() <= checkpoint {
            continue; // Already applied: a redelivery or a re-publish.
        }
        if *previous > checkpoint {
            // Something between the checkpoint and this event never arrived (or this
            // projection was left behind): take it from the event store, the truth.
            let mut after = checkpoint;
            loop {
                let missing = read_in_order(
                    client,
                    env.keys,
                    ReadRange {
                        after,
                        up_to: Some(*previous),
                        tenant_id: None,
                        limit: 1000,
                    },
                    false,
                )
                .await?;
                let Some(last) = missing.last() else { break };
                after = last.order();
                tracing::warn!(
                    projection = projection.name(),
                    count = missing.len(),
                    "filling a gap from the event store"
                );
                applied += missing.len() as i64;
                pending.extend(missing.into_iter().map(|event| {
                    if personal {
                        (Pending::Sealed(event), 1)
                    } else {
                        (Pending::Ready(event), 1)
                    }
                }));
            }
        }
        checkpoint = event.order();
        last_event_at = Some(event.occurred_at);
        applied += 1;
        let item = if personal {
            match opened.get(index) {
                Some(Some(Ok(open))) => Pending::Ready(open.clone()),
                Some(Some(Err(reason))) => Pending::Unopenable(event.clone(), reason.clone()),
                _ => Pending::Sealed(event.clone()),
            }
        } else {
            Pending::Ready(event.clone())
        };
        pending.push((item, delivered));
    }
    let mut ready = Vec::with_capacity(pending.len());
    let mut ready_deliveries = Vec::with_capacity(pending.len());
    for (item, delivered) in open_sealed(client, env.keys, pending).await? {
        match item {
            Ok(event) => {
                ready.push(event);
                ready_deliveries.push(delivered);
            }
            Err((event, reason)) => {
                dead_letter_event(client, projection, &event, &reason, delivered).await?
            }
        }
    }
    apply_page(
        client,
        env,
        projection,
        &ready,
        "",
        Applier::Statements,
        &|i| ready_deliveries.get(i).copied().unwrap_or(1),
    )
    .await?;
    Ok(Applied {
        projection,
        checkpoint,
        applied,
        last_event_at,
    })
}

/// Saves the checkpoints of the projections that applied the batch, in one statement.
async fn save_checkpoints(
    client: &Object,
    applied: &[Applied],
) -> Result<(), tokio_postgres::Error> {
    if applied.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = applied.iter().map(|a| a.projection.name()).collect();
    let transactions: Vec<i64> = applied
        .iter()
        .map(|a| a.checkpoint.transaction_id)
        .collect();
    let positions: Vec<i64> = applied.iter().map(|a| a.checkpoint.position).collect();
    let counts: Vec<i64> = applied.iter().map(|a| a.applied).collect();
    let times: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        applied.iter().map(|a| a.last_event_at).collect();
    let statement = client
        .prepare_cached(
            "UPDATE projection_checkpoints c
                SET last_transaction_id = s.transaction_id, last_position = s.position,
                    events_applied = c.events_applied + s.applied,
                    last_event_at = coalesce(s.last_event_at, c.last_event_at), updated_at = now()
               FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[])
                    AS s(projection, transaction_id, position, applied, last_event_at)
              WHERE c.projection = s.projection",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&names, &transactions, &positions, &counts, &times],
        )
        .await?;
    Ok(())
}

/// Opens the personal data of the events still sealed (gap fills) in one key lookup: each
/// event ready, or with why it cannot be opened.
async fn open_sealed(
    client: &Object,
    keys: &KeyRing,
    pending: Vec<(Pending, i64)>,
) -> Result<Vec<(Opened, i64)>, StoreError> {
    let mut sealed = Vec::new();
    let mut out: Vec<(Option<Opened>, i64)> = Vec::with_capacity(pending.len());
    for (item, delivered) in pending {
        match item {
            Pending::Ready(event) => out.push((Some(Ok(event)), delivered)),
            Pending::Unopenable(event, reason) => out.push((Some(Err((event, reason))), delivered)),
            Pending::Sealed(event) => {
                sealed.push((out.len(), event));
                out.push((None, delivered));
            }
        }
    }
    if !sealed.is_empty() {
        let (indexes, mut events): (Vec<usize>, Vec<RecordedEvent>) = sealed.into_iter().unzip();
        let results = decrypt_personal_data(client, keys, &mut events).await?;
        for ((index, event), result) in indexes.into_iter().zip(events).zip(results) {
            out[index].0 = Some(match result {
                Ok(()) => Ok(event),
                Err(error) => Err((event, error.to_string())),
            });
        }
    }
    Ok(out
        .into_iter()
        .filter_map(|(item, delivered)| item.map(|item| (item, delivered)))
        .collect())
}

/// An event ready for a projection, or the event and why its personal data stays closed.
type Opened = Result<RecordedEvent, (RecordedEvent, String)>;

async fn dead_letter_message(
    client: &Object,
    projection: Projection,
    message: &Message,
    reason: &str,
    deliveries: i64,
) -> Result<(), tokio_postgres::Error> {
    tracing::error!(projection = projection.name(), subject = %message.subject, error = %reason, "malformed message dead-lettered");
    metrics::counter!("eventra_projection_dead_letters_total", "projection" => projection.name())
        .increment(1);
    let payload = String::from_utf8_lossy(&message.payload).into_owned();
    let event_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .and_then(|v| uuid::Uuid::try_parse(v.as_str()).ok());
    client
        .execute(
            "INSERT INTO dead_letters (projection, event_id, subject, payload, error, deliveries)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &projection.name(),
                &event_id,
                &message.subject.as_str(),
                &payload,
                &reason,
                &deliveries,
            ],
        )
        .await?;
    Ok(())
}
