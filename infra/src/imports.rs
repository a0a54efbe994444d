//! The rows of bulk imports and their work queue (ADR 0020): the uploaded rows sealed until
//! imported, the `imports` row a worker claims with a lease, and the row errors.

use serde_json::Value;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::crypto::KeyRing;

/// What binds a sealed row to its place.
fn row_context(import_id: Uuid, row: i32) -> Vec<u8> {
    let mut context = import_id.as_bytes().to_vec();
    context.extend_from_slice(&row.to_be_bytes());
    context
}

/// Stores a batch of uploaded rows, each sealed.
pub async fn insert_rows(
    client: &Client,
    keys: &KeyRing,
    import_id: Uuid,
    rows: &[(i32, Value)],
) -> Result<(), anyhow::Error> {
    let mut numbers = Vec::with_capacity(rows.len());
    let mut sealed = Vec::with_capacity(rows.len());
    for (row, value) in rows {
        numbers.push(*row);
        sealed.push(
            keys.seal_secret(&row_context(import_id, *row), value.to_string().as_bytes())
                .map_err(|e| anyhow::anyhow!("sealing a row failed: {e:?}"))?,
        );
    }
    client
        .execute(
            "INSERT INTO import_rows (import_id, row_number, sealed)
             SELECT $1, * FROM unnest($2::integer[], $3::bytea[])",
            &[&import_id, &numbers, &sealed],
        )
        .await?;
    Ok(())
}

/// The next rows of an import from `from` on, opened (a row that does not open reads as an
/// error marker).
pub async fn rows_from(
    client: &Client,
    keys: &KeyRing,
    import_id: Uuid,
    from: i32,
    limit: i64,
) -> Result<Vec<(i32, Value)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT row_number, sealed FROM import_rows
              WHERE import_id = $1 AND row_number >= $2 ORDER BY row_number LIMIT $3",
            &[&import_id, &from, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let number: i32 = row.get(0);
            let sealed: Vec<u8> = row.get(1);
            let value = keys
                .open_secret(&row_context(import_id, number), &sealed)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_else(|| serde_json::json!({ ERROR_FIELD: "the row could not be read" }));
            (number, value)
        })
        .collect())
}

/// The field of a stored row that says why it cannot be imported (set at upload for a row
/// the parser could not read: a wrong number of fields, invalid JSON or UTF-8).
pub const ERROR_FIELD: &str = "__error";

/// Forgets an import's rows (it is over).
pub async fn forget_rows(client: &Client, import_id: Uuid) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM import_rows WHERE import_id = $1",
            &[&import_id],
        )
        .await
}

/// An import a worker has claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub import_id: Uuid,
    pub tenant_id: Uuid,
    pub started_by: Uuid,
}

/// Claims the oldest open import of a tenant whose lease (if any) ran out: only the oldest
/// open import of each tenant can ever be claimed, so a tenant never has two running.
pub async fn claim(
    client: &Client,
    worker: &str,
    lease_ms: f64,
) -> Result<Option<Claimed>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "UPDATE imports SET status = 'running', claimed_by = $1,
                    lease_until = now() + $2 * interval '1 millisecond',
                    started_at = coalesce(started_at, now())
              WHERE import_id = (
                    SELECT i.import_id FROM imports i
                     WHERE i.status IN ('queued', 'running')
                       AND (i.lease_until IS NULL OR i.lease_until < now())
                       AND NOT EXISTS (SELECT 1 FROM imports o
                                        WHERE o.tenant_id = i.tenant_id
                                          AND o.status IN ('queued', 'running')
                                          AND (o.created_at, o.import_id) < (i.created_at, i.import_id))
                     ORDER BY i.created_at LIMIT 1
                     FOR UPDATE SKIP LOCKED)
              RETURNING import_id, tenant_id, started_by",
            &[&worker, &lease_ms],
        )
        .await?;
    Ok(row.map(|row| Claimed {
        import_id: row.get(0),
        tenant_id: row.get(1),
        started_by: row.get(2),
    }))
}

/// The import's row, locked for the transaction: its status, the next row, and whether
/// `worker` still holds it.
pub async fn lock(
    client: &Client,
    import_id: Uuid,
) -> Result<Option<(String, i32, Option<String>)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT status, next_row, claimed_by FROM imports WHERE import_id = $1 FOR UPDATE",
            &[&import_id],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
}

/// Records a batch: the counts, the next row, the errors, and a renewed lease; `status` is
/// `running`, or how it ended.
#[allow(clippy::too_many_arguments)]
pub async fn record_batch(
    client: &Client,
    import_id: Uuid,
    next_row: i32,
    counts: [i32; 4],
    errors: &[(i32, String)],
    status: &str,
    lease_ms: f64,
    last_position: i64,
) -> Result<(), tokio_postgres::Error> {
    let [processed, created, skipped, failed] = counts;
    client
        .execute(
            "UPDATE imports SET next_row = $2, processed = $3, created = $4, skipped = $5,
                    failed = $6, status = $7,
                    lease_until = CASE WHEN $7 = 'running' THEN now() + $8 * interval '1 millisecond' END,
                    failures = 0,
                    finished_at = CASE WHEN $7 = 'running' THEN NULL ELSE now() END,
                    last_position = greatest(last_position, $9)
              WHERE import_id = $1",
            &[
                &import_id,
                &next_row,
                &processed,
                &created,
                &skipped,
                &failed,
                &status,
                &lease_ms,
                &last_position,
            ],
        )
        .await?;
    if !errors.is_empty() {
        let numbers: Vec<i32> = errors.iter().map(|(row, _)| *row).collect();
        let reasons: Vec<&str> = errors.iter().map(|(_, reason)| reason.as_str()).collect();
        client
            .execute(
                "INSERT INTO import_errors (import_id, row_number, reason)
                 SELECT $1, * FROM unnest($2::integer[], $3::text[]) ON CONFLICT DO NOTHING",
                &[&import_id, &numbers, &reasons],
            )
            .await?;
    }
    Ok(())
}

/// Queues a new import (in the transaction of its `import.started`).
pub async fn create(
    client: &Client,
    (import_id, tenant_id): (Uuid, Uuid),
    format: &str,
    total: i32,
    started_by: Uuid,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO imports (import_id, tenant_id, format, total, started_by, last_position)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &import_id,
                &tenant_id,
                &format,
                &total,
                &started_by,
                &position,
            ],
        )
        .await?;
    Ok(())
}

/// Ends an import as `status` (cancelled, failed) and forgets its rows.
pub async fn close(
    client: &Client,
    import_id: Uuid,
    status: &str,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE imports SET status = $2, finished_at = now(), lease_until = NULL,
                    last_position = greatest(last_position, $3)
              WHERE import_id = $1",
            &[&import_id, &status, &position],
        )
        .await?;
    forget_rows(client, import_id).await?;
    Ok(())
}

/// Rows of imports started within the last hour by a tenant (its budget's use), and the
/// seconds until the oldest of them leaves the hour.
pub async fn rows_in_last_hour(
    client: &Client,
    tenant_id: Uuid,
) -> Result<(i64, i64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(total), 0)::bigint,
                    coalesce(ceil(extract(epoch FROM min(created_at) + interval '1 hour' - now())), 0)::bigint
               FROM imports WHERE tenant_id = $1 AND created_at > now() - interval '1 hour'",
            &[&tenant_id],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Counts a failed batch of an import; answers how many failed one after the other.
pub async fn count_failure(client: &Client, import_id: Uuid) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "UPDATE imports SET failures = failures + 1 WHERE import_id = $1 RETURNING failures",
            &[&import_id],
        )
        .await?;
    Ok(row.map_or(0, |row| row.get(0)))
}
