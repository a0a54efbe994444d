//! Reads outside a command: one stream, and the whole store in publication order (what the
//! relay publishes, what gap fills and rebuilds read).

use deadpool_postgres::ClientWrapper;
use infra::crypto::KeyRing;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::error::StoreError;
use crate::order::{Order, ReadRange};
use crate::recorded::RecordedEvent;
use crate::rows::{SELECT_EVENTS, decode_row, decode_rows, stream_rows};

/// Loads one stream from sequence `after + 1` on, personal data opened (or marked erased).
pub async fn load_stream(
    client: &ClientWrapper,
    keys: &KeyRing,
    aggregate_type: &str,
    aggregate_id: Uuid,
    after: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = stream_rows(client, aggregate_type, aggregate_id, after).await?;
    decode_rows(client, keys, rows).await
}

/// The state of one stream folded outside any command, without opening personal data (for
/// streams that hold none, such as a tenant's: the rate limiter reads a tenant's limit this
/// way, upcast like every other read).
pub async fn fold_stream<A: Aggregate>(
    client: &ClientWrapper,
    aggregate_id: Uuid,
) -> Result<A, StoreError> {
    let mut state = A::default();
    for row in stream_rows(client, A::TYPE, aggregate_id, 0).await? {
        let recorded = decode_row(row, None)?;
        let event = recorded
            .to_domain()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if let Some(event) = A::unwrap(event) {
            state.apply(&event, recorded.occurred_at);
        }
    }
    Ok(state)
}

/// Reads committed events in publication order, only from transactions below the
/// visibility horizon, so an event that commits late is never skipped (ADR 2). With
/// `decrypt`, personal fields are opened; without, they stay as stored (what the relay
/// publishes).
pub async fn read_in_order(
    client: &Client,
    keys: &KeyRing,
    range: ReadRange,
    decrypt: bool,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let up_to = range.up_to.unwrap_or(Order::new(i64::MAX, i64::MAX));
    let rows = client
        .query(
            &format!(
                "{SELECT_EVENTS}
                  WHERE (transaction_id, position) > ($1::bigint::text::xid8, $2)
                    AND (transaction_id, position) <= ($3::bigint::text::xid8, $4)
                    AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                    AND ($5::uuid IS NULL OR tenant_id = $5)
                  ORDER BY transaction_id, position
                  LIMIT $6"
            ),
            &[
                &range.after.transaction_id,
                &range.after.position,
                &up_to.transaction_id,
                &up_to.position,
                &range.tenant_id,
                &range.limit,
            ],
        )
        .await?;
    if decrypt {
        decode_rows(client, keys, rows).await
    } else {
        rows.into_iter().map(|row| decode_row(row, None)).collect()
    }
}

/// One event by its id, personal data opened (or marked erased): what a webhook delivery
/// sends, read when it is sent.
pub async fn load_event(
    client: &Client,
    keys: &KeyRing,
    event_id: Uuid,
) -> Result<Option<RecordedEvent>, StoreError> {
    let rows = client
        .query(
            &format!("{SELECT_EVENTS} WHERE event_id = $1"),
            &[&event_id],
        )
        .await?;
    Ok(decode_rows(client, keys, rows).await?.into_iter().next())
}

/// Every event of the store in position order from `after`, decrypted (for tools).
pub(crate) async fn load_all(
    client: &Client,
    keys: &KeyRing,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = client
        .query(
            &format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"),
            &[&after, &limit],
        )
        .await?;
    decode_rows(client, keys, rows).await
}
