//! Idempotency records: a command's answer stored with its events, so that a retry with the
//! same key gets the first answer and appends nothing. Only a [`Transaction`] can claim a
//! key (the answer must commit with the events).
//!
//! What is stored holds no secret (ADR 0022): the request's fingerprint is an HMAC under a
//! key derived from the master key (a body may hold a password), an answer that carries
//! credentials is withheld (only that it succeeded is kept), and each record names whose
//! data its answer may hold, so that erasing a user forgets it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::StoreError;
use crate::store::EventStore;
use crate::unit::Transaction;

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// First use: run the command.
    Fresh,
    /// Already answered: return this answer and do nothing.
    Replay { status: u16, body: Value },
    /// Already answered, but the answer carried credentials and was not kept.
    Withheld,
    /// The key was used before with a different request.
    Mismatch,
}

impl Transaction {
    /// Claims an idempotency key. A concurrent claim of the same key waits for this
    /// transaction and then sees its answer.
    #[tracing::instrument(skip(self, request_hash))]
    pub async fn claim_idempotency(
        &self,
        scope: &str,
        key: &str,
        request_hash: &[u8],
    ) -> Result<IdempotencyClaim, StoreError> {
        let client = self.client();
        let request_hash = self.shared.keys.fingerprint("idempotency", request_hash);
        let inserted = client
            .execute(
                "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&scope, &key, &request_hash],
            )
            .await?;
        if inserted == 1 {
            return Ok(IdempotencyClaim::Fresh);
        }
        let row = client
            .query_one(
                "SELECT request_hash, response_status, response_body, withheld
                   FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
                &[&scope, &key],
            )
            .await?;
        let stored_hash: Vec<u8> = row.get(0);
        if stored_hash != request_hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        if row.get::<_, bool>(3) {
            return Ok(IdempotencyClaim::Withheld);
        }
        let status: Option<i16> = row.get(1);
        let body: Option<Value> = row.get(2);
        Ok(IdempotencyClaim::Replay {
            status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
            body: body.unwrap_or(Value::Null),
        })
    }

    /// Records the answer to replay for the claimed key: `Some` body to replay, or `None`
    /// when the answer carried credentials (only that it succeeded is kept). `subjects`: the
    /// users whose data the answer may hold.
    pub async fn complete_idempotency(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: Option<&Value>,
        subjects: &[uuid::Uuid],
    ) -> Result<(), StoreError> {
        let status = i16::try_from(status).unwrap_or(200);
        let withheld = body.is_none();
        let body = body.unwrap_or(&Value::Null);
        self.client()
            .execute(
                "UPDATE idempotency_keys
                    SET response_status = $3, response_body = $4, withheld = $5, subjects = $6
                  WHERE scope = $1 AND idempotency_key = $2",
                &[&scope, &key, &status, body, &withheld, &subjects],
            )
            .await?;
        Ok(())
    }

    /// Releases a claimed key (the command was refused; a retry runs it afresh).
    pub async fn forget_idempotency(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.client()
            .execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
                &[&scope, &key],
            )
            .await?;
        Ok(())
    }
}

impl EventStore {
    /// Forgets idempotency keys recorded before `older_than` (a retry after that runs the
    /// command again). Returns how many were removed.
    pub async fn purge_idempotency_keys(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let client = self.pool().get().await?;
        Ok(client
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at < $1",
                &[&older_than],
            )
            .await?)
    }
}
