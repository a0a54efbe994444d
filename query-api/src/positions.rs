//! The projections' positions, watched for every waiting read at once (ADR 0023). A read
//! with `X-Min-Position` waits on this watch, holding no database connection; one poller
//! reads all checkpoints while anybody waits (and nothing while nobody does). The waits of
//! one tenant are capped, so that no tenant can park more than its share of requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use api_common::ApiError;
use deadpool_postgres::Pool;
use eventstore::Order;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use uuid::Uuid;

/// How often the checkpoints are read while somebody waits.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

pub struct Positions {
    current: watch::Sender<HashMap<String, Order>>,
    waiting: AtomicUsize,
    wake: Notify,
    per_tenant: Mutex<HashMap<Uuid, usize>>,
    max_per_tenant: usize,
}

impl Positions {
    /// Starts the poller on the current runtime; it ends with the last handle.
    pub fn start(pool: Pool, max_per_tenant: usize) -> Arc<Self> {
        let positions = Arc::new(Positions {
            current: watch::Sender::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            wake: Notify::new(),
            per_tenant: Mutex::default(),
            max_per_tenant,
        });
        tokio::spawn(poll(Arc::downgrade(&positions), pool));
        positions
    }

    /// Waits until `projection` has reached `target`, or `deadline` (503, not caught up);
    /// a tenant with `max_per_tenant` waits open gets a 503 at once.
    pub async fn wait_for(
        &self,
        tenant: Uuid,
        projection: &str,
        target: Order,
        deadline: Instant,
    ) -> Result<i64, ApiError> {
        let _slot = self.take_slot(tenant)?;
        let mut seen = self.current.subscribe();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.wake.notify_one();
        loop {
            let reached = seen.borrow_and_update().get(projection).copied();
            if let Some(current) = reached
                && current >= target
            {
                return Ok(current.position);
            }
            tokio::select! {
                changed = seen.changed() => {
                    if changed.is_err() {
                        return Err(ApiError::Unavailable(anyhow::anyhow!("the position watch stopped")));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ApiError::NotCaughtUp(format!(
                        "the {projection} view has not reached position {} yet (it is at {}); retry shortly",
                        target.position,
                        reached.map_or(0, |order| order.position)
                    )));
                }
            }
        }
    }

    fn take_slot(&self, tenant: Uuid) -> Result<Slot<'_>, ApiError> {
        let mut per_tenant = self
            .per_tenant
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let open = per_tenant.entry(tenant).or_insert(0);
        if *open >= self.max_per_tenant {
            metrics::counter!("eventra_position_waits_refused_total").increment(1);
            return Err(ApiError::NotCaughtUp(format!(
                "too many reads of this tenant are waiting for a position ({}); retry shortly",
                self.max_per_tenant
            )));
        }
        *open += 1;
        Ok(Slot {
            positions: self,
            tenant,
        })
    }
}

/// A tenant's open wait; given back when dropped.
struct Slot<'a> {
    positions: &'a Positions,
    tenant: Uuid,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut per_tenant = self
            .positions
            .per_tenant
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = per_tenant.get_mut(&self.tenant) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_tenant.remove(&self.tenant);
            }
        }
    }
}

/// Counts a waiting read for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn poll(positions: std::sync::Weak<Positions>, pool: Pool) {
    loop {
        let Some(strong) = positions.upgrade() else {
            return;
        };
        if strong.waiting.load(Ordering::SeqCst) == 0 {
            // Asleep until a read waits (a wake-up sent before this point is kept); every few
            // seconds it lets go, so that the task ends once the last handle is gone.
            tokio::select! {
                () = strong.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        }
        match read_all(&pool).await {
            Ok(read) => {
                strong.current.send_replace(read);
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "reading the projections' positions failed"
                );
            }
        }
        drop(strong);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn read_all(pool: &Pool) -> anyhow::Result<HashMap<String, Order>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT projection, last_transaction_id, last_position FROM projection_checkpoints",
        )
        .await?;
    Ok(client
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| (row.get(0), Order::new(row.get(1), row.get(2))))
        .collect())
}
