//! The projection runtime: one durable pull consumer per projection, messages applied in
//! order in batches, each batch in one transaction together with the projection's
//! checkpoint, acknowledged only after commit.
//!
//! Exactly-once effect: a message at or below the checkpoint is a duplicate and changes
//! nothing. No skipping: each message names the event published before it; if the
//! projection has not reached that one (a message lost, given up on after `max_deliver`,
//! or a stream that was purged), the missing events are read from the event store first.
//! Poison: an event that cannot be applied is dead-lettered with its error and the
//! projection moves on; a database failure is retried with backoff and never skips.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, Message};
use deadpool_postgres::{Object, Pool};
use eventstore::RecordedEvent;
use eventstore::{Order, ReadRange, StoreError, decrypt_personal_data, read_in_order};
use futures_util::StreamExt as _;
use infra::crypto::KeyRing;
use infra::db::PgTransaction;
use tokio::sync::watch;

use crate::checkpoint::{dead_letter_event, lock_checkpoint, save_checkpoint};
use crate::email::projection::EmailPolicy;
use crate::page::{Applier, apply_page};
use crate::projections::{Env, Projecting as _, Projection};
use crate::settings::StreamSettings;
use crate::stream::{
    PREVIOUS_HEADER, STORE_HEADER, TRANSACTION_ID_HEADER, ensure_consumer, parse_order,
};

pub struct Runner {
    pub projection: Projection,
    pub pool: Pool,
    pub keys: Arc<KeyRing>,
    pub js: jetstream::Context,
    pub stream: StreamSettings,
    pub batch_size: usize,
    pub email: EmailPolicy,
}

/// A message as received: the event it carries, or why it could not be read.
struct Incoming {
    message: Message,
    event: Result<(RecordedEvent, Order), String>,
    /// Published by another event store (a stream left over from another database).
    foreign: bool,
}

impl Runner {
    /// Consumes until `shutdown` turns true; the batch in hand is finished first.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let name = self.projection.name();
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let consumer = match ensure_consumer(&self.js, &self.stream, name).await {
                Ok(consumer) => consumer,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(
                        projection = name,
                        error = format!("{error:#}"),
                        "no consumer yet; retrying"
                    );
                    pause(failures, &mut shutdown).await;
                    continue;
                }
            };
            let store_id = match self.store_id().await {
                Ok(store_id) => store_id,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(projection = name, %error, "reading the store identity failed; retrying");
                    pause(failures, &mut shutdown).await;
                    continue;
                }
            };
            failures = 0;
            tracing::debug!(projection = name, "consumer ready");
            // Whatever the stream holds or lost, start from the event store: after a crash
            // the messages this projection had in hand wait out their ack deadline, and a
            // recreated stream starts empty.
            loop {
                match self.catch_up().await {
                    Ok(applied) => {
                        if applied > 0 {
                            tracing::info!(
                                projection = name,
                                applied,
                                "caught up from the event store"
                            );
                        }
                        break;
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(projection = name, %error, "catching up failed; retrying");
                        if pause(failures, &mut shutdown).await {
                            return;
                        }
                    }
                }
            }
            failures = 0;
            while !*shutdown.borrow() {
                let batch = consumer
                    .fetch()
                    .max_messages(self.batch_size)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await;
                let mut messages = match batch {
                    Ok(messages) => messages,
                    Err(error) => {
                        tracing::warn!(projection = name, %error, "fetching failed; recreating the consumer");
                        break;
                    }
                };
                tracing::trace!(projection = name, "fetched");
                // The server ends a pull after its expiry; if that answer is lost (the
                // consumer vanished mid-request), stop waiting and recreate the consumer.
                let (incoming, broken) = match tokio::time::timeout(
                    FETCH_DEADLINE,
                    receive(&mut messages, name, &store_id),
                )
                .await
                {
                    Ok(received) => received,
                    Err(_) => {
                        tracing::warn!(
                            projection = name,
                            "a fetch was never answered; recreating the consumer"
                        );
                        break;
                    }
                };
                if broken {
                    break;
                }
                if incoming.is_empty() {
                    // Idle: make sure the consumer (and its stream) still exist; a deleted
                    // stream answers no fetch and raises no error.
                    if let Err(error) = consumer.get_info().await {
                        tracing::warn!(projection = name, %error, "the consumer is gone; recreating it");
                        break;
                    }
                } else {
                    self.handle_batch(incoming, &mut shutdown).await;
                }
            }
        }
        tracing::info!(projection = name, "projection stopped");
    }

    fn env(&self) -> Env<'_> {
        Env {
            keys: &self.keys,
            email: self.email,
        }
    }

    async fn store_id(&self) -> Result<String, BatchError> {
        let client = self.pool.get().await.map_err(infra::db::BeginError::from)?;
        Ok(infra::migrate::store_id(&client).await?.to_string())
    }

    /// Applies every committed event after the checkpoint straight from the event store.
    pub async fn catch_up(&self) -> Result<u64, BatchError> {
        let mut total = 0;
        loop {
            let transaction = PgTransaction::begin(&self.pool).await?;
            let client = transaction.client();
            let checkpoint = lock_checkpoint(client, self.projection).await?;
            let events = read_in_order(
                client,
                &self.keys,
                ReadRange {
                    after: checkpoint,
                    limit: 500,
                    ..Default::default()
                },
                self.projection.needs_personal_data(),
            )
            .await?;
            let Some(last) = events.last() else {
                transaction.rollback().await;
                return Ok(total);
            };
            apply_page(
                client,
                self.env(),
                self.projection,
                &events,
                "",
                Applier::Statements,
                &|_| 1,
            )
            .await?;
            save_checkpoint(
                client,
                self.projection,
                last.order(),
                events.len() as i64,
                Some(last.occurred_at),
            )
            .await?;
            transaction.commit().await?;
            total += events.len() as u64;
        }
    }

    /// Applies a batch, retrying database failures with backoff, then acknowledges it.
    async fn handle_batch(&self, batch: Vec<Incoming>, shutdown: &mut watch::Receiver<bool>) {
        let name = self.projection.name();
        let redelivered = batch
            .iter()
            .filter(|i| i.message.info().is_ok_and(|info| info.delivered > 1))
            .count();
        if redelivered > 0 {
            metrics::counter!("eventra_projection_redeliveries_total", "projection" => name)
                .increment(redelivered as u64);
        }
        let mut attempt = 0u32;
        loop {
            match apply_batch(self.projection, &self.pool, self.env(), &batch).await {
                Ok(checkpoint) => {
                    metrics::gauge!("eventra_projection_position", "projection" => name)
                        .set(checkpoint.position as f64);
                    for incoming in &batch {
                        if let Err(error) = incoming.message.ack().await {
                            // Redelivered later and recognised as a duplicate.
                            tracing::warn!(projection = name, %error, "acknowledgement failed");
                        }
                    }
                    return;
                }
                Err(error) => {
                    attempt += 1;
                    tracing::warn!(projection = name, attempt, %error, "applying a batch failed; retrying");
                    for incoming in &batch {
                        let _ = incoming.message.ack_with(AckKind::Progress).await;
                    }
                    if pause(attempt, shutdown).await {
                        return; // Not acknowledged: redelivered to whoever runs next.
                    }
                }
            }
        }
    }
}

/// How long one fetch may take before the consumer is considered lost.
const FETCH_DEADLINE: Duration = Duration::from_secs(5);

/// Collects one fetch's messages; the flag says the fetch ended in an error.
async fn receive(
    messages: &mut async_nats::jetstream::consumer::pull::Batch,
    projection: &str,
    store_id: &str,
) -> (Vec<Incoming>, bool) {
    let mut incoming = Vec::new();
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => incoming.push(parse(message, store_id)),
            Err(error) => {
                tracing::warn!(projection, %error, "receiving failed");
                return (incoming, true);
            }
        }
    }
    (incoming, false)
}

/// Sleeps an exponential backoff (capped at 5 s); true when shutting down.
async fn pause(attempt: u32, shutdown: &mut watch::Receiver<bool>) -> bool {
    let delay = Duration::from_millis((100u64 << attempt.min(6)).min(5_000));
    tokio::select! {
        _ = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

fn parse(message: Message, store_id: &str) -> Incoming {
    let foreign = message
        .headers
        .as_ref()
        .and_then(|h| h.get(STORE_HEADER))
        .is_some_and(|v| v.as_str() != store_id);
    let event = (|| {
        let headers = message
            .headers
            .as_ref()
            .ok_or("the message has no headers")?;
        let transaction_id: i64 = headers
            .get(TRANSACTION_ID_HEADER)
            .and_then(|v| v.as_str().parse().ok())
            .ok_or("the message has no valid transaction id header")?;
        let previous = headers
            .get(PREVIOUS_HEADER)
            .and_then(|v| parse_order(v.as_str()))
            .ok_or("the message has no valid previous-event header")?;
        let envelope: serde_json::Value = serde_json::from_slice(&message.payload)
            .map_err(|e| format!("the payload is not JSON: {e}"))?;
        let event = RecordedEvent::from_envelope(&envelope, transaction_id)?;
        Ok::<_, String>((event, previous))
    })();
    Incoming {
        message,
        event,
        foreign,
    }
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

/// Applies a batch in one transaction; returns the new checkpoint.
async fn apply_batch(
    projection: Projection,
    pool: &Pool,
    env: Env<'_>,
    batch: &[Incoming],
) -> Result<Order, BatchError> {
    let keys = env.keys;
    let transaction = PgTransaction::begin(pool).await?;
    let client = transaction.client();
    let mut checkpoint = lock_checkpoint(client, projection).await?;
    let mut applied = 0i64;
    let mut last_event_at = None;
    // The events to apply, in order, as stored (personal data still sealed), each with how
    // often it was delivered.
    let mut events = Vec::with_capacity(batch.len());
    let mut deliveries = Vec::with_capacity(batch.len());
    for incoming in batch {
        if incoming.foreign {
            tracing::warn!(
                projection = projection.name(),
                subject = %incoming.message.subject,
                "ignoring a message published by another event store"
            );
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
            // Something between the checkpoint and this event never arrived: take it from
            // the event store, which is the truth.
            let mut after = checkpoint;
            loop {
                let missing = read_in_order(
                    client,
                    keys,
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
                deliveries.extend(std::iter::repeat_n(1, missing.len()));
                events.extend(missing);
            }
        }
        checkpoint = event.order();
        last_event_at = Some(event.occurred_at);
        applied += 1;
        events.push(event.clone());
        deliveries.push(delivered);
    }
    // Every subject's key in one query; an event that cannot be opened is dead-lettered.
    let opened = if projection.needs_personal_data() {
        decrypt_personal_data(client, keys, &mut events).await?
    } else {
        events.iter().map(|_| Ok(())).collect()
    };
    let mut ready = Vec::with_capacity(events.len());
    let mut ready_deliveries = Vec::with_capacity(events.len());
    for ((event, delivered), result) in events.into_iter().zip(deliveries).zip(opened) {
        match result {
            Ok(()) => {
                ready.push(event);
                ready_deliveries.push(delivered);
            }
            Err(error) => {
                dead_letter_event(client, projection, &event, &error.to_string(), delivered).await?
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
    save_checkpoint(client, projection, checkpoint, applied, last_event_at).await?;
    transaction.commit().await?;
    metrics::counter!("eventra_projection_events_applied_total", "projection" => projection.name())
        .increment(applied as u64);
    Ok(checkpoint)
}

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
