//! The signer's side: registering the key it signs with and keeping it alive; revoking and
//! listing keys for operators.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;

use super::{KEYS_CHANNEL, SigningKey};

/// How often a signer extends its key's `verify_until`; a key verifies for the access-token
/// lifetime plus three of these past its last extension.
pub const HEARTBEAT: StdDuration = StdDuration::from_secs(60);

/// The command API's side: the key it signs with, registered and kept alive in the table.
pub struct Signer {
    pub(super) key: SigningKey,
    /// The `verify_until` last written (Unix seconds): no token outlives it.
    registered_until: std::sync::atomic::AtomicI64,
}

impl Signer {
    /// Registers `key` (refusing a revoked one) so that it verifies for `access_ttl` plus
    /// three heartbeats, and extends that every `heartbeat` ([`HEARTBEAT`] in the services)
    /// for as long as the signer is in use.
    pub async fn register(
        pool: Pool,
        key: SigningKey,
        access_ttl: Duration,
        heartbeat: StdDuration,
    ) -> anyhow::Result<Arc<Self>> {
        let signer = Arc::new(Signer {
            key,
            registered_until: std::sync::atomic::AtomicI64::new(0),
        });
        let lifetime =
            access_ttl.num_milliseconds() as f64 / 1000.0 + 3.0 * heartbeat.as_secs_f64();
        signer
            .extend(&pool, lifetime)
            .await
            .context("registering the token signing key")?;
        tracing::info!(kid = signer.key.kid(), "signing access tokens");
        let weak = Arc::downgrade(&signer);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(heartbeat).await;
                // Nobody signs with it any more: let it lapse.
                let Some(signer) = weak.upgrade() else { return };
                if let Err(error) = signer.extend(&pool, lifetime).await {
                    tracing::error!(%error, kid = signer.key.kid(), "extending the token signing key failed");
                }
            }
        });
        Ok(signer)
    }

    async fn extend(&self, pool: &Pool, lifetime_seconds: f64) -> anyhow::Result<()> {
        let client = pool.get().await?;
        let row = client
            .query_opt(
                "INSERT INTO token_signing_keys (kid, algorithm, public_key, verify_until)
                 VALUES ($1, 'EdDSA', $2, now() + make_interval(secs => $3))
                 ON CONFLICT (kid) DO UPDATE
                    SET last_signed_at = now(),
                        verify_until = GREATEST(token_signing_keys.verify_until,
                                                EXCLUDED.verify_until)
                  WHERE token_signing_keys.retired_at IS NULL
                 RETURNING verify_until, xmax = 0",
                &[
                    &self.key.kid(),
                    &self.key.public_key().as_slice(),
                    &lifetime_seconds,
                ],
            )
            .await?;
        let Some(row) = row else {
            self.registered_until
                .store(0, std::sync::atomic::Ordering::Relaxed);
            anyhow::bail!(
                "the token signing key {} was revoked; configure a new JWT_SIGNING_KEY",
                self.key.kid()
            );
        };
        let until: DateTime<Utc> = row.get(0);
        let inserted: bool = row.get(1);
        if inserted {
            client
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[&KEYS_CHANNEL, &self.key.kid()],
                )
                .await?;
        }
        self.registered_until
            .store(until.timestamp(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    pub(super) fn registered_until(&self) -> i64 {
        self.registered_until
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Revokes a key at once (an operator who believes it leaked): every token it signed stops
/// verifying on every instance, and an instance still holding it refuses to sign.
pub async fn revoke(pool: &Pool, kid: &str) -> anyhow::Result<bool> {
    let client = pool.get().await?;
    let revoked = client
        .execute(
            "UPDATE token_signing_keys SET retired_at = now(), verify_until = now()
              WHERE kid = $1 AND retired_at IS NULL",
            &[&kid],
        )
        .await?;
    client
        .execute("SELECT pg_notify($1, $2)", &[&KEYS_CHANNEL, &kid])
        .await?;
    Ok(revoked == 1)
}

/// A key as operators list it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    pub kid: String,
    pub first_signed_at: DateTime<Utc>,
    pub last_signed_at: DateTime<Utc>,
    pub verify_until: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Every registered key, newest first.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<KeyRow>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT kid, first_signed_at, last_signed_at, verify_until, retired_at
               FROM token_signing_keys ORDER BY first_signed_at DESC, kid",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| KeyRow {
            kid: row.get(0),
            first_signed_at: row.get(1),
            last_signed_at: row.get(2),
            verify_until: row.get(3),
            retired_at: row.get(4),
        })
        .collect())
}
