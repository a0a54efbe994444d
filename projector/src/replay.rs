//! Replaying a projection from the event store: rebuilt beside the live tables, then
//! switched in one transaction, so readers see the old model until the new one is
//! complete and never anything half-built.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use deadpool_postgres::Pool;
use eventstore::{Order, ReadRange, read_in_order};
use indicatif::{ProgressBar, ProgressStyle};
use infra::crypto::KeyRing;
use infra::db::PgTransaction;
use uuid::Uuid;

use crate::checkpoint::lock_checkpoint;
use crate::email::projection::EmailPolicy;
use crate::page::{Applier, apply_page};
use crate::projections::{Env, Projection};

const PAGE: i64 = 5000;
/// The suffix of the tables a replay builds beside the live ones.
pub const STAGING: &str = "_staging";

#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub projection: Projection,
    pub tenant_id: Option<Uuid>,
    pub events: u64,
    pub elapsed: Duration,
    /// The checkpoint the rebuilt model is at when switched in.
    pub checkpoint: Order,
}

/// Rebuilds `projection` (all of it, or one tenant's rows) from the event store.
///
/// The rebuild goes up to the live projection's checkpoint, into `<table>_staging`. Then,
/// holding the live projection's checkpoint lock (the live projector waits), it applies
/// what the live side did in the meantime and replaces the live rows with the rebuilt ones
/// in one transaction. The live projection continues from its checkpoint afterwards.
pub async fn replay(
    pool: &Pool,
    keys: &KeyRing,
    projection: Projection,
    tenant_id: Option<Uuid>,
    show_progress: bool,
) -> anyhow::Result<ReplayReport> {
    if projection == Projection::EmailJobs {
        bail!(
            "the email-jobs projection is never replayed: a replay would send every email again \
             (dead jobs are retried with `projector email-jobs retry`)"
        );
    }
    if projection == Projection::WebhookDeliveries {
        bail!(
            "the webhook-deliveries projection is never replayed: a replay would deliver every \
             event again (dead deliveries are retried from the API)"
        );
    }
    if projection == Projection::Search {
        if tenant_id.is_some() {
            bail!("the search index is rebuilt whole; leave out --tenant");
        }
        let started = Instant::now();
        let (generation, events) = request_search_rebuild(pool, Duration::from_secs(3600)).await?;
        return Ok(ReplayReport {
            projection,
            tenant_id,
            events: u64::try_from(events).unwrap_or(0),
            elapsed: started.elapsed(),
            // The rebuilt index names its generation, not a position.
            checkpoint: Order::new(generation, 0),
        });
    }
    let started = Instant::now();
    let control = pool.get().await.context("connecting to Postgres")?;
    let lock_name = format!("eventra.replay.{}", projection.name());
    let locked: bool = control
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&lock_name],
        )
        .await?
        .get(0);
    if !locked {
        bail!("a replay of {} is already running", projection.name());
    }
    for table in projection.tables() {
        control
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}{STAGING}; CREATE TABLE {table}{STAGING} (LIKE {table} INCLUDING ALL);"
            ))
            .await
            .with_context(|| format!("creating {table}{STAGING}"))?;
    }
    let target: Order = control
        .query_opt(
            "SELECT last_transaction_id, last_position FROM projection_checkpoints WHERE projection = $1",
            &[&projection.name()],
        )
        .await?
        .map_or(Order::START, |row| Order::new(row.get(0), row.get(1)));
    let total: i64 = control
        .query_one(
            "SELECT count(*) FROM events
              WHERE (transaction_id, position) <= ($1::bigint::text::xid8, $2)
                AND ($3::uuid IS NULL OR tenant_id = $3)",
            &[&target.transaction_id, &target.position, &tenant_id],
        )
        .await?
        .get(0);
    let progress = if show_progress {
        let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("replaying {}", projection.name()));
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut after = Order::START;
    let mut events = 0u64;
    loop {
        let transaction = PgTransaction::begin(pool).await?;
        let applied = apply_range(
            &transaction,
            keys,
            projection,
            after,
            Some(target),
            tenant_id,
        )
        .await?;
        transaction.commit().await?;
        let Some(last) = applied.last_pair else { break };
        after = last;
        events += applied.count;
        progress.inc(applied.count);
    }

    // Switch: catch up with the live projection while it waits, then replace its rows.
    let transaction = PgTransaction::begin(pool).await?;
    let client = transaction.client();
    let live = lock_checkpoint(client, projection).await?;
    loop {
        let applied =
            apply_range(&transaction, keys, projection, after, Some(live), tenant_id).await?;
        let Some(last) = applied.last_pair else { break };
        after = last;
        events += applied.count;
        progress.inc(applied.count);
    }
    for table in projection.tables() {
        match tenant_id {
            Some(tenant_id) => {
                client
                    .execute(
                        &format!("DELETE FROM {table} WHERE tenant_id = $1"),
                        &[&tenant_id],
                    )
                    .await?;
                client
                    .execute(
                        &format!("INSERT INTO {table} SELECT * FROM {table}{STAGING} WHERE tenant_id = $1"),
                        &[&tenant_id],
                    )
                    .await?;
            }
            None => {
                client
                    .batch_execute(&format!(
                        "DELETE FROM {table}; INSERT INTO {table} SELECT * FROM {table}{STAGING};"
                    ))
                    .await?;
            }
        }
        client
            .batch_execute(&format!("DROP TABLE {table}{STAGING}"))
            .await?;
    }
    transaction
        .commit()
        .await
        .context("switching to the rebuilt model")?;
    control
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&lock_name],
        )
        .await?;
    progress.finish_with_message(format!("replayed {}", projection.name()));
    Ok(ReplayReport {
        projection,
        tenant_id,
        events,
        elapsed: started.elapsed(),
        checkpoint: live,
    })
}

struct Applied {
    count: u64,
    last_pair: Option<Order>,
}

/// Applies one page of events after `after` (up to `up_to`) to the staging tables.
async fn apply_range(
    transaction: &PgTransaction,
    keys: &KeyRing,
    projection: Projection,
    after: Order,
    up_to: Option<Order>,
    tenant_id: Option<Uuid>,
) -> anyhow::Result<Applied> {
    let client = transaction.client();
    let events = read_in_order(
        client,
        keys,
        ReadRange {
            after,
            up_to,
            tenant_id,
            limit: PAGE,
        },
        true,
    )
    .await?;
    let env = Env {
        keys,
        email: EmailPolicy::default(),
    };
    // The users model is folded a page at a time: each row written once.
    let applier = match projection {
        Projection::Users => Applier::FoldedUsers,
        _ => Applier::Statements,
    };
    apply_page(client, env, projection, &events, STAGING, applier, &|_| 0).await?;
    Ok(Applied {
        count: events.len() as u64,
        last_pair: events.last().map(|e| e.order()),
    })
}

/// Asks the running projector to rebuild the search index beside the live one, and waits
/// until it has switched; returns the new generation and the events indexed.
async fn request_search_rebuild(pool: &Pool, timeout: Duration) -> anyhow::Result<(i64, i64)> {
    let client = pool.get().await?;
    let id: i64 = client
        .query_one(
            "INSERT INTO search_rebuilds DEFAULT VALUES RETURNING id",
            &[],
        )
        .await?
        .get(0);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let row = client
            .query_one("SELECT finished_at IS NOT NULL, generation, events FROM search_rebuilds WHERE id = $1", &[&id])
            .await?;
        if row.get::<_, bool>(0) {
            return Ok((
                row.get::<_, Option<i64>>(1).unwrap_or(0),
                row.get::<_, Option<i64>>(2).unwrap_or(0),
            ));
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the rebuild was requested (request {id}) but no running projector has done it yet; \
                 it happens when `projector run` is running"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
