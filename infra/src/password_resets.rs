//! The queue of password reset requests (ADR 0019). The command API only queues a request
//! (the address sealed under the master-derived secrets key, bound to the request id) and
//! answers 202; the projector's scheduler takes each in the transaction that handles it. So
//! the answer, and the time it takes, never depend on whether the address has an account.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::crypto::KeyRing;

/// A request taken from the queue, its address opened.
#[derive(Debug)]
pub struct ResetRequest {
    pub request_id: Uuid,
    pub tenant_id: Uuid,
    /// As the asker typed it (normalised by whoever looks it up); `None` if it did not open.
    pub email: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
}

/// Queues a request.
pub async fn queue(
    client: &Client,
    keys: &KeyRing,
    tenant_id: Uuid,
    email: &str,
    correlation_id: Option<&str>,
) -> Result<Uuid, anyhow::Error> {
    let request_id = Uuid::now_v7();
    let sealed = keys
        .seal_secret(request_id.as_bytes(), email.as_bytes())
        .map_err(|e| anyhow::anyhow!("sealing a reset request failed: {e:?}"))?;
    client
        .execute(
            "INSERT INTO password_reset_requests (request_id, tenant_id, sealed_email, correlation_id)
             VALUES ($1, $2, $3, $4)",
            &[&request_id, &tenant_id, &sealed, &correlation_id],
        )
        .await?;
    Ok(request_id)
}

/// Takes the oldest request no one else is handling: deleted in the caller's transaction, so
/// it is handled exactly once when that commits, and back in the queue if it rolls back.
pub async fn take(
    client: &Client,
    keys: &KeyRing,
) -> Result<Option<ResetRequest>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "DELETE FROM password_reset_requests
              WHERE request_id = (SELECT request_id FROM password_reset_requests
                                   ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED)
              RETURNING request_id, tenant_id, sealed_email, requested_at, correlation_id",
            &[],
        )
        .await?;
    Ok(row.map(|row| {
        let request_id: Uuid = row.get(0);
        let sealed: Vec<u8> = row.get(2);
        ResetRequest {
            request_id,
            tenant_id: row.get(1),
            email: keys
                .open_secret(request_id.as_bytes(), &sealed)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok()),
            requested_at: row.get(3),
            correlation_id: row.get(4),
        }
    }))
}

/// How many requests wait (a gauge on the projector's `/metrics`).
pub async fn waiting(client: &Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT count(*) FROM password_reset_requests", &[])
        .await?
        .get(0))
}
