//! The projection runtime: one durable pull consumer for a group of projections (every
//! projection a process runs but the search index; ADR 32), messages applied in order in
//! batches, each batch in one transaction together with every projection's checkpoint,
//! acknowledged only after commit.
//!
//! Exactly-once effect: a message at or below a projection's checkpoint is a duplicate for
//! it and changes nothing. No skipping: each message names the event published before it;
//! if a projection has not reached that one (a message lost, given up on after
//! `max_deliver`, a stream that was purged, or the projection left behind), the missing
//! events are read from the event store first. Poison: an event that cannot be applied is
//! dead-lettered with its error and the projection moves on. A database failure of the
//! whole batch is retried with backoff and never skips; a failure of one projection's own
//! statements leaves that projection behind, caught up from the event store with backoff
//! while the others go on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, Message};
use deadpool_postgres::Pool;
use eventstore::{ReadRange, RecordedEvent, read_in_order};
use futures_util::StreamExt as _;
use infra::crypto::KeyRing;
use infra::db::PgTransaction;
use tokio::sync::watch;

pub use crate::batch::BatchError;
use crate::batch::{Incoming, apply_group};
use crate::checkpoint::{lock_checkpoint, save_checkpoint};
use crate::email::projection::EmailPolicy;
use crate::page::{Applier, apply_page};
use crate::projections::{Env, Projecting as _, Projection};
use crate::settings::StreamSettings;
use crate::stream::{
    PREVIOUS_HEADER, STORE_HEADER, TRANSACTION_ID_HEADER, ensure_consumer, parse_order,
    remove_replaced_consumers,
};

#[derive(Clone)]
pub struct Runner {
    /// The group: applied together, from one consumer.
    pub projections: Vec<Projection>,
    pub pool: Pool,
    pub keys: Arc<KeyRing>,
    pub js: jetstream::Context,
    pub stream: StreamSettings,
    pub batch_size: usize,
    pub email: EmailPolicy,
    /// The projections left behind, caught up by a task of their own until they rejoin.
    pub behind: Arc<Mutex<HashSet<Projection>>>,
}

/// The consumer's name for a group: a single projection's own name, or `projections-` and
/// a stable hash of the sorted names (a JetStream name has a bounded length).
pub fn group_name(projections: &[Projection]) -> String {
    if let [single] = projections {
        return single.name().to_owned();
    }
    let mut names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    names.sort_unstable();
    // FNV-1a: stable across builds and platforms, unlike the standard hasher.
    let hash = names
        .join(",")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("projections-{hash:016x}")
}

impl Runner {
    pub fn new(
        projections: Vec<Projection>,
        pool: Pool,
        keys: Arc<KeyRing>,
        js: jetstream::Context,
        stream: StreamSettings,
        batch_size: usize,
        email: EmailPolicy,
    ) -> Runner {
        let mut projections = projections;
        projections.sort_unstable_by_key(|p| p.name());
        projections.dedup();
        Runner {
            projections,
            pool,
            keys,
            js,
            stream,
            batch_size,
            email,
            behind: Arc::default(),
        }
    }

    /// Consumes until `shutdown` turns true; the batch in hand is finished first.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let name = group_name(&self.projections);
        let name = name.as_str();
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let consumer = match ensure_consumer(&self.js, &self.stream, name).await {
                Ok(consumer) => consumer,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(
                        consumer = name,
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
                    tracing::warn!(consumer = name, %error, "reading the store identity failed; retrying");
                    pause(failures, &mut shutdown).await;
                    continue;
                }
            };
            failures = 0;
            tracing::debug!(consumer = name, "consumer ready");
            let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
            remove_replaced_consumers(&self.js, &self.stream, name, &names).await;
            // Whatever the stream holds or lost, start from the event store: after a crash
            // the messages this group had in hand wait out their ack deadline, and a
            // recreated stream starts empty. A projection that cannot catch up now is left
            // behind and caught up by a task of its own.
            for projection in self.active() {
                if let Err(error) = self.catch_up(projection).await {
                    self.leave_behind(projection, &error.to_string(), &shutdown);
                }
            }
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
                        tracing::warn!(consumer = name, %error, "fetching failed; recreating the consumer");
                        break;
                    }
                };
                tracing::trace!(consumer = name, "fetched");
                // The server ends a pull at its expiry, or at once when it has nothing more
                // to give; that end is sometimes never sent (a race in the server). By the
                // deadline, apply what the fetch brought, then start over: the consumer is
                // checked (recreated if gone) and every projection catches up from the event
                // store, so nothing the abandoned pull was still delivering waits for its
                // redelivery.
                let mut incoming = Vec::new();
                let broken = match tokio::time::timeout(
                    FETCH_DEADLINE,
                    receive(&mut messages, &mut incoming, name, &store_id),
                )
                .await
                {
                    Ok(broken) => broken,
                    Err(_) => {
                        metrics::counter!("eventra_projection_fetch_deadlines_total", "consumer" => name.to_owned())
                            .increment(1);
                        tracing::warn!(
                            consumer = name,
                            received = incoming.len(),
                            "a fetch did not end by its deadline; applying what it brought and starting over"
                        );
                        true
                    }
                };
                if !incoming.is_empty() {
                    self.handle_batch(name, incoming, &mut shutdown).await;
                    if broken {
                        break;
                    }
                    continue;
                }
                if broken {
                    break;
                }
                // Idle: make sure the consumer (and its stream) still exist; a deleted stream
                // answers no fetch and raises no error.
                if let Err(error) = consumer.get_info().await {
                    tracing::warn!(consumer = name, %error, "the consumer is gone; recreating it");
                    break;
                }
            }
        }
        tracing::info!(consumer = name, "projections stopped");
    }

    fn env(&self) -> Env<'_> {
        Env {
            keys: &self.keys,
            email: self.email,
        }
    }

    /// The projections of the group that are not behind.
    fn active(&self) -> Vec<Projection> {
        let behind = self.behind.lock().map(|b| b.clone()).unwrap_or_default();
        self.projections
            .iter()
            .copied()
            .filter(|p| !behind.contains(p))
            .collect()
    }

    /// Takes `projection` out of the group's batches and catches it up from the event store
    /// with backoff until it succeeds; then it rejoins (and catches up once more, for the
    /// batches acknowledged meanwhile).
    fn leave_behind(&self, projection: Projection, error: &str, shutdown: &watch::Receiver<bool>) {
        let Ok(mut behind) = self.behind.lock() else {
            return;
        };
        if !behind.insert(projection) {
            return;
        }
        drop(behind);
        tracing::warn!(projection = projection.name(), %error, "a projection failed on its own; it catches up from the event store");
        metrics::counter!("eventra_projection_left_behind_total", "projection" => projection.name())
            .increment(1);
        let runner = self.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                if pause(attempt, &mut shutdown).await {
                    return;
                }
                attempt += 1;
                match runner.catch_up(projection).await {
                    Ok(_) => {
                        if let Ok(mut behind) = runner.behind.lock() {
                            behind.remove(&projection);
                        }
                        // Batches acknowledged before the group took it back in.
                        match runner.catch_up(projection).await {
                            Ok(_) => {
                                tracing::info!(
                                    projection = projection.name(),
                                    "caught up; back in the group"
                                );
                                return;
                            }
                            Err(error) => {
                                if let Ok(mut behind) = runner.behind.lock() {
                                    behind.insert(projection);
                                }
                                tracing::warn!(projection = projection.name(), attempt, %error, "catching up failed; retrying");
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(projection = projection.name(), attempt, %error, "catching up failed; retrying");
                    }
                }
            }
        });
    }

    async fn store_id(&self) -> Result<String, BatchError> {
        let client = self.pool.get().await.map_err(infra::db::BeginError::from)?;
        Ok(infra::migrate::store_id(&client).await?.to_string())
    }

    /// Applies every committed event after the projection's checkpoint straight from the
    /// event store.
    pub async fn catch_up(&self, projection: Projection) -> Result<u64, BatchError> {
        let mut total = 0;
        loop {
            let transaction = PgTransaction::begin(&self.pool).await?;
            let client = transaction.client();
            let checkpoint = lock_checkpoint(client, projection).await?;
            let events = read_in_order(
                client,
                &self.keys,
                ReadRange {
                    after: checkpoint,
                    limit: 500,
                    ..Default::default()
                },
                projection.needs_personal_data(),
            )
            .await?;
            let Some(last) = events.last() else {
                transaction.rollback().await;
                if total > 0 {
                    tracing::info!(
                        projection = projection.name(),
                        applied = total,
                        "caught up from the event store"
                    );
                }
                return Ok(total);
            };
            apply_page(
                client,
                self.env(),
                projection,
                &events,
                "",
                Applier::Statements,
                &|_| 1,
            )
            .await?;
            save_checkpoint(
                client,
                projection,
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
    async fn handle_batch(
        &self,
        name: &str,
        batch: Vec<Incoming>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let redelivered = batch
            .iter()
            .filter(|i| i.message.info().is_ok_and(|info| info.delivered > 1))
            .count();
        if redelivered > 0 {
            metrics::counter!("eventra_projection_redeliveries_total", "projection" => name.to_owned())
                .increment(redelivered as u64);
        }
        let mut attempt = 0u32;
        loop {
            let active = self.active();
            match apply_group(&active, &self.pool, self.env(), &batch).await {
                Ok(outcome) => {
                    for applied in &outcome.applied {
                        metrics::gauge!("eventra_projection_position", "projection" => applied.projection.name())
                            .set(applied.checkpoint.position as f64);
                    }
                    for (projection, error) in &outcome.behind {
                        self.leave_behind(*projection, error, shutdown);
                    }
                    for incoming in &batch {
                        if let Err(error) = incoming.message.ack().await {
                            // Redelivered later and recognised as a duplicate.
                            tracing::warn!(consumer = name, %error, "acknowledgement failed");
                        }
                    }
                    return;
                }
                Err(error) => {
                    attempt += 1;
                    tracing::warn!(consumer = name, attempt, %error, "applying a batch failed; retrying");
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

/// How long one fetch may take (its expiry is half a second) before the runner goes on
/// without its end.
const FETCH_DEADLINE: Duration = Duration::from_millis(1_000);

/// Collects one fetch's messages into `incoming`; true when the fetch ended in an error.
async fn receive(
    messages: &mut async_nats::jetstream::consumer::pull::Batch,
    incoming: &mut Vec<Incoming>,
    projection: &str,
    store_id: &str,
) -> bool {
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => incoming.push(parse(message, store_id)),
            Err(error) => {
                tracing::warn!(projection, %error, "receiving failed");
                return true;
            }
        }
    }
    false
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
