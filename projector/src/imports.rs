//! The import worker (ADR 0020): claims the oldest open import of a tenant with a lease and
//! creates its users in batches. Each batch is one transaction: the queue row locked (a
//! cancellation waits for it, or stops it), the accounts' events with their address
//! reservations, `import.progressed` (and `import.completed` after the last row), the row
//! errors and the next row. A worker killed mid-batch leaves nothing of that batch; the next
//! claim resumes from the last committed one, so no row is created twice or lost.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use domain::event::{ImportCounts, RowError};
use domain::import::ImportRow;
use domain::invitation::DEFAULT_EXPIRES_IN_MINUTES;
use domain::{Import, Invitation, User};
use eventstore::{Changes, EMAIL, EventMetadata, EventStore, INVITATION};
use infra::crypto::LinkToken;
use infra::email_jobs::{EmailSecret, LinkPurpose};
use infra::imports::{Claimed, ERROR_FIELD};
use serde_json::Value;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

/// The source named in the metadata of the events appended here.
pub const SOURCE: &str = "eventra-imports";

pub struct ImportWorker {
    pub store: EventStore,
    /// `IMPORT_BATCH_ROWS`, default 500: rows per transaction.
    pub batch: i64,
    /// `IMPORT_LEASE_SECS`, default 30: how long a claim lasts without a committed batch.
    pub lease: Duration,
    /// `IMPORT_POLL_INTERVAL_MS`, default 500: how often an idle worker looks for work.
    pub poll_interval: Duration,
    /// Names this worker in the queue row.
    pub name: String,
    /// `IMPORT_MAX_BATCH_FAILURES`, default 5: batches failing one after the other before
    /// the import fails (`import.failed`) instead of being tried again forever.
    pub max_failures: i32,
}

/// How one batch ended.
enum Batch {
    /// More rows wait.
    More,
    /// The import is over (completed, cancelled, or no longer this worker's).
    Done,
}

impl ImportWorker {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.name, batch = self.batch, "import worker running");
        loop {
            match self.claim_and_work(&mut shutdown).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "an import round failed; retrying"
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    fn lease_ms(&self) -> f64 {
        self.lease.as_millis() as f64
    }

    /// Claims an import and works it off; `false` when there was none.
    async fn claim_and_work(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<bool> {
        let claimed = {
            let client = self.store.pool().get().await?;
            infra::imports::claim(&client, &self.name, self.lease_ms()).await?
        };
        let Some(claimed) = claimed else {
            return Ok(false);
        };
        let span = tracing::info_span!("import", import_id = %claimed.import_id, tenant_id = %claimed.tenant_id);
        let work = async {
            tracing::info!("import claimed");
            loop {
                if *shutdown.borrow() {
                    return Ok(());
                }
                match self.batch(&claimed).await {
                    Ok(Batch::More) => {}
                    Ok(Batch::Done) => return Ok(()),
                    Err(error) => return self.failed_batch(&claimed, error).await,
                }
            }
        };
        metrics::gauge!("eventra_imports_running").increment(1.0);
        let result = work.instrument(span).await;
        metrics::gauge!("eventra_imports_running").decrement(1.0);
        result.map(|()| true)
    }

    /// Counts a failed batch; past `max_failures` in a row the import fails, so one bad batch
    /// cannot be tried again forever. Otherwise it is tried again once the lease runs out.
    async fn failed_batch(&self, claimed: &Claimed, error: anyhow::Error) -> anyhow::Result<()> {
        let failures = {
            let client = self.store.pool().get().await?;
            infra::imports::count_failure(&client, claimed.import_id).await?
        };
        tracing::warn!(
            error = format!("{error:#}"),
            failures,
            "an import batch failed"
        );
        if failures < self.max_failures {
            return Err(error);
        }
        let transaction = self.store.begin().await?;
        transaction.lock_import(claimed.import_id).await?;
        let import = transaction
            .reader()
            .load::<Import>(claimed.import_id)
            .await?;
        let reason = format!("a batch failed {failures} times in a row (see the projector's log)");
        let events = domain::import::fail(&import.state, &reason);
        let metadata = EventMetadata {
            source: SOURCE.to_owned(),
            actor_id: Some(claimed.started_by),
            correlation_id: Some(format!("import:{}", claimed.import_id)),
            ..EventMetadata::default()
        };
        let appended = transaction
            .append(
                Changes::new(claimed.tenant_id, Utc::now()).appending(&import, events),
                &metadata,
            )
            .await?;
        transaction
            .close_import(
                claimed.import_id,
                "failed",
                appended.last().map_or(0, |e| e.position),
            )
            .await?;
        transaction.commit().await?;
        tracing::error!(failures, "import failed: its batch kept failing");
        Ok(())
    }

    /// Writes one batch in one transaction.
    async fn batch(&self, claimed: &Claimed) -> anyhow::Result<Batch> {
        let transaction = self.store.begin().await?;
        let Some((status, next_row, holder)) = transaction.lock_import(claimed.import_id).await?
        else {
            return Ok(Batch::Done);
        };
        if status != "running" || holder.as_deref() != Some(self.name.as_str()) {
            tracing::info!(%status, "import no longer this worker's");
            return Ok(Batch::Done);
        }
        let tenant_id = claimed.tenant_id;
        transaction.lock_tenant_membership(tenant_id).await?;
        let rows = transaction
            .import_rows_from(claimed.import_id, next_row, self.batch)
            .await?;
        let reader = transaction.reader();
        let import = reader.load::<Import>(claimed.import_id).await?;
        let now = Utc::now();
        let mut changes = Changes::new(tenant_id, now)
            .by(claimed.started_by)
            .without_keeping();
        let mut counts = ImportCounts::default();
        let mut errors = Vec::new();
        let mut reserved = Vec::new();
        let mut seen = HashSet::new();
        let mut links = Vec::new();
        // Every row checked first, then the batch's addresses looked up in one query.
        let mut checked = Vec::with_capacity(rows.len());
        for (number, value) in &rows {
            counts.processed += 1;
            let row = u32::try_from(*number).unwrap_or_default();
            let parsed = match value.get(ERROR_FIELD).and_then(Value::as_str) {
                Some(reason) => Err(reason.to_owned()),
                None => ImportRow::parse(fields(value)),
            };
            match parsed {
                Ok(row_data) => {
                    let normalised = row_data.email.normalised();
                    let hash = transaction.keys().blind_index(EMAIL, &normalised);
                    checked.push((row_data, normalised, hash));
                }
                Err(reason) => {
                    counts.failed += 1;
                    errors.push(RowError { row, reason });
                }
            }
        }
        let hashes: Vec<Vec<u8>> = checked.iter().map(|(_, _, hash)| hash.clone()).collect();
        let held = reader.reservation_owners(tenant_id, EMAIL, &hashes).await?;
        for (row_data, normalised, hash) in checked {
            if held.contains_key(&hash) || !seen.insert(normalised.clone()) {
                counts.skipped += 1;
                continue;
            }
            let user_id = Uuid::now_v7();
            let events =
                domain::import::imported_user(tenant_id, user_id, &row_data, claimed.started_by);
            changes = changes.creating::<User>(user_id, events);
            // The link to set a password: an invitation for the account, its token sealed for
            // the email only.
            let invitation_id = Uuid::now_v7();
            let token = LinkToken::new(invitation_id)
                .map_err(|e| anyhow::anyhow!("no randomness: {e:?}"))?;
            let expires_at = now + chrono::Duration::minutes(i64::from(DEFAULT_EXPIRES_IN_MINUTES));
            let invitation = domain::import::invitation_for(
                (claimed.import_id, invitation_id),
                (tenant_id, user_id),
                &row_data,
                (token.hash, expires_at),
                claimed.started_by,
            );
            changes = changes.creating::<Invitation>(invitation_id, vec![invitation]);
            let invited = transaction.keys().blind_index(INVITATION, &normalised);
            links.push((invitation_id, token.token, expires_at, invited));
            reserved.push((hash, user_id));
            counts.created += 1;
        }
        let recorded_errors: Vec<(i32, String)> = errors
            .iter()
            .map(|e| (i32::try_from(e.row).unwrap_or_default(), e.reason.clone()))
            .collect();
        let (events, done, status) = if rows.is_empty() {
            // Rows gone before every one was looked at: nothing more can come.
            let events = domain::import::fail(&import.state, "the uploaded rows are gone");
            (events, true, "failed")
        } else {
            let events = domain::import::record_batch(&import.state, counts, errors);
            let done = events.len() > 1;
            (events, done, if done { "completed" } else { "running" })
        };
        let total = ImportCounts {
            processed: import.state.counts.processed + counts.processed,
            created: import.state.counts.created + counts.created,
            skipped: import.state.counts.skipped + counts.skipped,
            failed: import.state.counts.failed + counts.failed,
        };
        changes.append(&import, events);
        let metadata = EventMetadata {
            source: SOURCE.to_owned(),
            actor_id: Some(claimed.started_by),
            correlation_id: Some(format!("import:{}", claimed.import_id)),
            ..EventMetadata::default()
        };
        // The new accounts' data keys in one statement, before the append seals with them.
        let subjects: Vec<Uuid> = reserved.iter().map(|(_, user_id)| *user_id).collect();
        transaction.create_data_keys(tenant_id, &subjects).await?;
        let appended = transaction.append(changes, &metadata).await?;
        transaction
            .reserve_many(tenant_id, EMAIL, &reserved)
            .await?;
        let invited: Vec<(Vec<u8>, Uuid)> = links
            .iter()
            .map(|(invitation_id, _, _, invited)| (invited.clone(), *invitation_id))
            .collect();
        transaction
            .take_over_many(tenant_id, INVITATION, &invited)
            .await?;
        let first_events: std::collections::HashMap<Uuid, Uuid> = appended
            .iter()
            .rev()
            .map(|e| (e.aggregate_id, e.event_id))
            .collect();
        let secrets: Vec<EmailSecret<'_>> = links
            .iter()
            .filter_map(|(invitation_id, token, expires_at, _)| {
                Some(EmailSecret {
                    event_id: *first_events.get(invitation_id)?,
                    tenant_id,
                    aggregate_id: *invitation_id,
                    purpose: LinkPurpose::Invitation,
                    token,
                    expires_at: *expires_at,
                })
            })
            .collect();
        transaction.keep_email_secrets(&secrets).await?;
        let last_row = rows.last().map_or(next_row - 1, |(number, _)| *number);
        let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        transaction
            .record_import_batch(
                claimed.import_id,
                last_row + 1,
                [
                    as_i32(total.processed),
                    as_i32(total.created),
                    as_i32(total.skipped),
                    as_i32(total.failed),
                ],
                &recorded_errors,
                status,
                self.lease_ms(),
                appended.last().map_or(0, |e| e.position),
            )
            .await?;
        transaction.commit().await?;
        metrics::counter!("eventra_import_rows_total", "outcome" => "created")
            .increment(u64::from(counts.created));
        metrics::counter!("eventra_import_rows_total", "outcome" => "skipped")
            .increment(u64::from(counts.skipped));
        metrics::counter!("eventra_import_rows_total", "outcome" => "failed")
            .increment(u64::from(counts.failed));
        tracing::info!(
            processed = total.processed,
            created = total.created,
            skipped = total.skipped,
            failed = total.failed,
            done,
            "import batch committed"
        );
        Ok(if done { Batch::Done } else { Batch::More })
    }
}

/// A stored row's `(column, value)` pairs.
fn fields(value: &Value) -> impl Iterator<Item = (&str, &str)> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(column, value)| (column.as_str(), value.as_str().unwrap_or("")))
}

/// `projector imports list`: the imports, newest first, as JSON lines.
pub async fn list(
    pool: &deadpool_postgres::Pool,
    tenant: Option<Uuid>,
    status: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<Value>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT json_build_object('import_id', import_id, 'tenant_id', tenant_id,
                    'status', status, 'format', format, 'total', total, 'processed', processed,
                    'created', created, 'skipped', skipped, 'failed', failed,
                    'created_at', created_at, 'started_at', started_at,
                    'finished_at', finished_at, 'claimed_by', claimed_by)
               FROM imports
              WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR status = $2)
              ORDER BY created_at DESC LIMIT $3",
            &[&tenant, &status, &limit],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// `projector imports cancel <id>`: an operator stops an import (`import.cancelled` with no
/// actor), after the batch being written.
pub async fn cancel(store: &EventStore, import_id: Uuid) -> anyhow::Result<()> {
    let transaction = store.begin().await?;
    transaction.lock_import(import_id).await?;
    let import = transaction.reader().load::<Import>(import_id).await?;
    let tenant_id = import
        .state
        .tenant_id
        .ok_or_else(|| anyhow::anyhow!("no import {import_id}"))?;
    let events = domain::import::cancel_by_operator(&import.state)?;
    let metadata = EventMetadata {
        source: "projector-cli".to_owned(),
        correlation_id: Some(format!("import:{import_id}")),
        ..EventMetadata::default()
    };
    let appended = transaction
        .append(
            Changes::new(tenant_id, Utc::now()).appending(&import, events),
            &metadata,
        )
        .await?;
    transaction
        .close_import(
            import_id,
            "cancelled",
            appended.last().map_or(0, |e| e.position),
        )
        .await?;
    transaction.commit().await?;
    Ok(())
}
