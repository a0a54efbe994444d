//! The ordered relay: publishes every committed event to JetStream in publication order
//! `(transaction_id, position)`, never skipping one that commits late (ADR 2), and records
//! its progress only after JetStream acknowledged. One relay is active per database: the
//! leader holds a session advisory lock on its own connection; when it dies, the lock is
//! released and another process takes over.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture};
use chrono::{DateTime, Utc};
use eventstore::{Order, ReadRange, read_in_order};
use futures_util::StreamExt as _;
use infra::crypto::KeyRing;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::settings::StreamSettings;
use crate::stream::{
    PREVIOUS_HEADER, STORE_HEADER, TRANSACTION_ID_HEADER, ensure_stream, format_order,
};

/// The notification channel the events table's trigger signals on commit.
pub const EVENTS_CHANNEL: &str = "eventra_events_appended";
/// The relay's name in `relay_checkpoints`.
pub const RELAY_NAME: &str = "jetstream";
/// An arbitrary constant naming the relay leadership lock among advisory locks.
const RELAY_LOCK_KEY: i64 = 0x4556_5452_454c_4159;
const BATCH: i64 = 500;

pub struct Relay {
    pub database_url: String,
    pub keys: Arc<KeyRing>,
    pub js: jetstream::Context,
    pub stream: StreamSettings,
    pub poll_interval: Duration,
}

/// Where the relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayCheckpoint {
    pub after: Order,
    pub stream_created: Option<DateTime<Utc>>,
}

impl Relay {
    /// Runs until `shutdown` turns true: waits for leadership, then publishes whenever
    /// events commit (LISTEN/NOTIFY) and at least every poll interval.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            match self.lead(&mut shutdown).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = format!("{error:#}"), "relay interrupted; retrying");
                    let delay = Duration::from_millis((200u64 << failures.min(5)).min(5_000));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    async fn lead(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let (client, mut connection) = tokio_postgres::connect(&self.database_url, NoTls)
            .await
            .context("connecting the relay to Postgres")?;
        let (wake_tx, mut wake) = mpsc::channel::<()>(1);
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = wake_tx.try_send(());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "relay connection failed");
                        break;
                    }
                }
            }
        });
        let result = async {
            loop {
                let locked: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK_KEY])
                    .await?
                    .get(0);
                if locked {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
            tracing::info!("relay is the leader");
            client
                .batch_execute(&format!("LISTEN {EVENTS_CHANNEL}"))
                .await?;
            while !*shutdown.borrow() {
                let published = self.publish_available(&client).await?;
                if published as i64 >= BATCH {
                    continue;
                }
                tokio::select! {
                    _ = wake.recv() => {}
                    _ = tokio::time::sleep(self.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        drop(client);
        driver.abort();
        result
    }

    /// One pass: publishes the next batch of committed events and advances the checkpoint
    /// once JetStream acknowledged all of them. Returns how many were published.
    pub async fn publish_available(&self, client: &Client) -> anyhow::Result<usize> {
        let events = self.publish_without_checkpoint(client).await?;
        let Some((checkpoint, published)) = events else {
            return Ok(0);
        };
        save_checkpoint(client, &checkpoint).await?;
        Ok(published)
    }

    /// Publishes the next batch and returns the checkpoint to record, without recording it:
    /// the window a crash can fall into (tests use it to prove re-publishing is harmless).
    pub async fn publish_without_checkpoint(
        &self,
        client: &Client,
    ) -> anyhow::Result<Option<(RelayCheckpoint, usize)>> {
        let stream = ensure_stream(&self.js, &self.stream).await?;
        let stream_created = stream.cached_info().created;
        // Postgres keeps microseconds: compare at that precision.
        let stream_created = DateTime::<Utc>::from_timestamp(
            stream_created.unix_timestamp(),
            stream_created.nanosecond() / 1_000 * 1_000,
        );
        let mut checkpoint = load_checkpoint(client).await?;
        if checkpoint.stream_created != stream_created {
            if checkpoint.stream_created.is_some() {
                tracing::warn!(stream = %self.stream.name, "the stream was recreated; publishing every event again");
            }
            checkpoint = RelayCheckpoint {
                after: Order::START,
                stream_created,
            };
        }
        let events = read_in_order(
            client,
            &self.keys,
            ReadRange {
                after: checkpoint.after,
                limit: BATCH,
                ..Default::default()
            },
            false,
        )
        .await?;
        if events.is_empty() {
            if load_checkpoint(client).await?.stream_created != checkpoint.stream_created {
                save_checkpoint(client, &checkpoint).await?;
            }
            return Ok(None);
        }
        let store_id = infra::migrate::store_id(client).await?.to_string();
        let mut previous = checkpoint.after;
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(events.len());
        for event in &events {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
            headers.insert(
                TRANSACTION_ID_HEADER,
                event.transaction_id.to_string().as_str(),
            );
            headers.insert(PREVIOUS_HEADER, format_order(previous).as_str());
            headers.insert(STORE_HEADER, store_id.as_str());
            let payload = serde_json::to_vec(&event.envelope())?;
            let ack = self
                .js
                .publish_with_headers(
                    self.stream.subject_for(event.tenant_id, &event.event_type),
                    headers,
                    payload.into(),
                )
                .await
                .with_context(|| format!("publishing event {}", event.event_id))?;
            acks.push(ack);
            previous = event.order();
        }
        for ack in acks {
            ack.await
                .context("JetStream did not acknowledge a publish")?;
        }
        metrics::counter!("eventra_relay_events_published_total").increment(events.len() as u64);
        if let Some(last) = events.last() {
            metrics::gauge!("eventra_relay_position").set(last.position as f64);
            tracing::debug!(count = events.len(), last_event_id = %last.event_id, position = last.position, "published");
        }
        Ok(Some((
            RelayCheckpoint {
                after: previous,
                stream_created: checkpoint.stream_created,
            },
            events.len(),
        )))
    }
}

pub async fn load_checkpoint(client: &Client) -> anyhow::Result<RelayCheckpoint> {
    let row = client
        .query_opt(
            "SELECT last_transaction_id, last_position, stream_created FROM relay_checkpoints WHERE relay = $1",
            &[&RELAY_NAME],
        )
        .await?;
    Ok(match row {
        Some(row) => RelayCheckpoint {
            after: Order::new(row.get(0), row.get(1)),
            stream_created: row.get(2),
        },
        None => RelayCheckpoint {
            after: Order::START,
            stream_created: None,
        },
    })
}

pub async fn save_checkpoint(client: &Client, checkpoint: &RelayCheckpoint) -> anyhow::Result<()> {
    client
        .execute(
            "INSERT INTO relay_checkpoints (relay, last_transaction_id, last_position, stream_created, updated_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (relay) DO UPDATE SET last_transaction_id = EXCLUDED.last_transaction_id,
                 last_position = EXCLUDED.last_position, stream_created = EXCLUDED.stream_created,
                 updated_at = now()",
            &[&RELAY_NAME, &checkpoint.after.transaction_id, &checkpoint.after.position, &checkpoint.stream_created],
        )
        .await?;
    Ok(())
}
