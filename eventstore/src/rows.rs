//! Decoding the rows of the `events` table: upcast, then personal fields opened with their
//! subject's key (or marked erased).

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::ClientWrapper;
use infra::crypto::{DataKey, KeyRing};
use tokio_postgres::{Client, Row};
use uuid::Uuid;

use crate::data_keys::fetch_wrapped;
use crate::error::StoreError;
use crate::recorded::{EventMetadata, RecordedEvent};
use crate::sealing::open_fields;
use crate::upcast::upcast;

/// The columns of an event. The numeric transaction id has its own name: were it called
/// `transaction_id`, an `ORDER BY transaction_id` would sort by that expression instead of
/// walking the `(transaction_id, position)` index (a full sort per page of a replay).
pub(crate) const SELECT_EVENTS: &str =
    "SELECT position, event_id, tenant_id, aggregate_type, aggregate_id, sequence, type,
        version, data, metadata, occurred_at, transaction_id::text::bigint AS transaction_number
       FROM events";

/// The rows of one stream after sequence `after`, in order.
pub(crate) async fn stream_rows(
    client: &ClientWrapper,
    aggregate_type: &str,
    aggregate_id: Uuid,
    after: i64,
) -> Result<Vec<Row>, StoreError> {
    // Every command loads a stream: a cached statement (one round trip, planned once).
    let statement = client
        .prepare_cached(&format!(
            "{SELECT_EVENTS} WHERE aggregate_id = $2 AND sequence > $3 AND aggregate_type = $1
              ORDER BY sequence"
        ))
        .await?;
    Ok(client
        .query(&statement, &[&aggregate_type, &aggregate_id, &after])
        .await?)
}

/// Decodes rows into recorded events with their personal fields opened.
pub(crate) async fn decode_rows(
    client: &Client,
    keys: &KeyRing,
    rows: Vec<Row>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    decode_rows_with(client, keys, rows, &mut HashMap::new()).await
}

/// Like [`decode_rows`], using and adding to `opened`: keys already opened in the same
/// unit of work are not fetched again.
pub(crate) async fn decode_rows_with(
    client: &Client,
    keys: &KeyRing,
    rows: Vec<Row>,
    opened: &mut HashMap<Uuid, Arc<DataKey>>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut subjects = Vec::with_capacity(rows.len());
    for row in &rows {
        let metadata: EventMetadata = serde_json::from_value(row.get(9))
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?;
        subjects.push(metadata.data_subject);
    }
    let missing: Vec<Uuid> = subjects
        .iter()
        .flatten()
        .filter(|subject| !opened.contains_key(subject))
        .copied()
        .collect();
    for (subject, wrapped) in fetch_wrapped(client, &missing).await? {
        opened.insert(subject, Arc::new(keys.unwrap(subject, &wrapped)?));
    }
    rows.into_iter()
        .zip(subjects)
        .map(|(row, subject)| decode_row(row, subject.map(|s| opened.get(&s).map(|k| &**k))))
        .collect()
}

/// Decodes one row: upcast, then, when `key` is given (`Some(None)`: the subject's key is
/// gone), personal fields opened or marked erased.
pub(crate) fn decode_row(
    row: Row,
    key: Option<Option<&DataKey>>,
) -> Result<RecordedEvent, StoreError> {
    let event_id: Uuid = row.get(1);
    let event_type: String = row.get(6);
    let stored_version: i32 = row.get(7);
    let metadata: EventMetadata = serde_json::from_value(row.get(9))
        .map_err(|e| StoreError::Corrupt(format!("metadata of event {event_id}: {e}")))?;
    let (schema_version, mut data) = upcast(&event_type, stored_version, row.get(8))?;
    if let Some(key) = key {
        open_fields(key, event_id, &mut data)?;
    }
    Ok(RecordedEvent {
        position: row.get(0),
        transaction_id: row.get(11),
        event_id,
        tenant_id: row.get(2),
        aggregate_type: row.get(3),
        aggregate_id: row.get(4),
        sequence: row.get(5),
        event_type,
        schema_version,
        data,
        metadata,
        occurred_at: row.get(10),
    })
}
