//! The JetStream stream events are published to, and the consumers that read it.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};

use crate::settings::StreamSettings;

/// Headers the relay sets on every message.
pub const TRANSACTION_ID_HEADER: &str = "Eventra-Transaction-Id";
/// The identity of the event store that published the message.
pub const STORE_HEADER: &str = "Eventra-Store";
/// The `(transaction_id, position)` of the event published just before, as `txid/position`:
/// a consumer that has not reached it knows it missed something.
pub const PREVIOUS_HEADER: &str = "Eventra-Previous";

pub async fn connect(nats_url: &str) -> anyhow::Result<jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name("eventra-projector")
        .connect(nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    Ok(jetstream::new(client))
}

/// The stream, created when missing: file storage, configurable replicas, a de-duplication
/// window for the relay's message ids, and no expiry (the event store is the truth, but
/// consumers may start from the beginning).
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> anyhow::Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: settings.name.clone(),
        subjects: vec![settings.subjects()],
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: Duration::from_secs(120),
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating or reading the stream {}", settings.name))
}

/// The durable pull consumer of a projection group: explicit acknowledgement, bounded
/// redelivery with exponential backoff. Only the relay creates the stream (one creator, no
/// races when it is recreated); until it exists this fails and the caller retries.
///
/// A new consumer starts with the messages published after it was created: its runner
/// catches up from the event store right after creating it (which covers everything
/// before), and the first message it gets names the event before it, so a window between
/// the two is filled from the store too. Starting from the stream's first message would
/// deliver the whole history again, every message a duplicate.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    settings: &StreamSettings,
    group: &str,
) -> anyhow::Result<consumer::Consumer<consumer::pull::Config>> {
    let stream = js
        .get_stream(&settings.name)
        .await
        .with_context(|| format!("the stream {} does not exist yet", settings.name))?;
    let name = settings.consumer_name(group);
    let max_deliver = settings.max_deliver.max(2);
    // JetStream needs fewer backoff steps than deliveries.
    let steps = usize::try_from(max_deliver - 1).unwrap_or(1).min(8);
    // The first step is also the first delivery's ack wait, so it must cover a slow batch.
    let backoff = (0..steps)
        .map(|step| Duration::from_secs((30u64 << step).min(600)))
        .collect();
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: settings.subjects(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver,
                backoff,
                max_ack_pending: 4096,
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("creating or reading the consumer {name}"))
}

/// An order as a message header carries it: `transaction_id/position`.
pub fn format_order(order: eventstore::Order) -> String {
    format!("{}/{}", order.transaction_id, order.position)
}

pub fn parse_order(text: &str) -> Option<eventstore::Order> {
    let (transaction_id, position) = text.split_once('/')?;
    Some(eventstore::Order::new(
        transaction_id.parse().ok()?,
        position.parse().ok()?,
    ))
}

/// Deletes the consumers an earlier version kept per projection (`<prefix>-<projection>`)
/// for the projections now consumed as `group`; best effort (a missing one is fine).
pub async fn remove_replaced_consumers(
    js: &jetstream::Context,
    settings: &StreamSettings,
    group: &str,
    projections: &[&str],
) {
    let Ok(stream) = js.get_stream(&settings.name).await else {
        return;
    };
    for projection in projections.iter().filter(|p| **p != group) {
        let name = settings.consumer_name(projection);
        if stream.delete_consumer(&name).await.is_ok() {
            tracing::info!(consumer = %name, group, "removed a consumer replaced by the group's");
        }
    }
}
