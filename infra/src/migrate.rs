//! Versioned SQL migrations from `schema/`, embedded in the binaries.
//!
//! Safe to run twice (applied versions are skipped) and concurrently (a session-level
//! advisory lock lets one runner at a time in). A migration whose file changed after it
//! was applied is refused: history is not rewritten.

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A migration from its file in `schema/`.
macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../schema/", $file)),
        }
    };
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "event_store", "0001_event_store.sql"),
    migration!(2, "write_side_support", "0002_write_side_support.sql"),
    migration!(3, "relay_and_projections", "0003_relay_and_projections.sql"),
    migration!(4, "store_identity", "0004_store_identity.sql"),
    migration!(5, "search_rebuilds", "0005_search_rebuilds.sql"),
    migration!(6, "email_jobs", "0006_email_jobs.sql"),
    migration!(7, "stream_reads", "0007_stream_reads.sql"),
    migration!(8, "tenant_settings", "0008_tenant_settings.sql"),
    migration!(
        9,
        "teams_invitations_timers",
        "0009_teams_invitations_timers.sql"
    ),
    migration!(10, "account_lifecycle", "0010_account_lifecycle.sql"),
    migration!(11, "email_links", "0011_email_links.sql"),
    migration!(12, "imports", "0012_imports.sql"),
    migration!(
        13,
        "idempotency_without_secrets",
        "0013_idempotency_without_secrets.sql"
    ),
    migration!(14, "mail_budgets", "0014_mail_budgets.sql"),
    migration!(15, "webhook_secrets", "0015_webhook_secrets.sql"),
    migration!(16, "webhook_deliveries", "0016_webhook_deliveries.sql"),
    migration!(17, "token_signing_keys", "0017_token_signing_keys.sql"),
    migration!(18, "webhook_enabled_at", "0018_webhook_enabled_at.sql"),
    migration!(
        19,
        "auth_changes_announced",
        "0019_auth_changes_announced.sql"
    ),
];

/// This event store's identity (see `schema/0004_store_identity.sql`).
pub async fn store_id(
    client: &tokio_postgres::Client,
) -> Result<uuid::Uuid, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT store_id FROM store_identity", &[])
        .await?
        .get(0))
}

/// An arbitrary constant identifying the migration lock among advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x4556_454e_5452_4131;

/// Applies every pending migration; returns the versions applied now.
pub async fn run(client: &mut Client) -> anyhow::Result<Vec<i32>> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let result = apply_pending(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("releasing the migration lock")?;
    result
}

async fn apply_pending(client: &mut Client) -> anyhow::Result<Vec<i32>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .context("creating schema_migrations")?;
    let mut applied_now = Vec::new();
    for migration in MIGRATIONS {
        let checksum = hex(&Sha256::digest(migration.sql.as_bytes()));
        let existing = client
            .query_opt(
                "SELECT checksum FROM schema_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await?;
        if let Some(row) = existing {
            let recorded: String = row.get(0);
            if recorded != checksum {
                bail!(
                    "migration {} ({}) was changed after it was applied; add a new migration instead",
                    migration.version,
                    migration.name
                );
            }
            continue;
        }
        let transaction = client.transaction().await?;
        transaction
            .batch_execute(migration.sql)
            .await
            .with_context(|| {
                format!(
                    "applying migration {} ({})",
                    migration.version, migration.name
                )
            })?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                &[&migration.version, &migration.name, &checksum],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
        applied_now.push(migration.version);
    }
    Ok(applied_now)
}

/// Connects to `database_url` (creating the database if needed) and migrates it.
pub async fn migrate_database(database_url: &str) -> anyhow::Result<Vec<i32>> {
    crate::db::create_database_if_missing(database_url).await?;
    let (mut client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting to the database to migrate it")?;
    let connection = tokio::spawn(connection);
    let applied = run(&mut client).await;
    drop(client);
    let _ = connection.await;
    applied
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}
