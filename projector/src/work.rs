//! What every queue worker of the projector shares (the email jobs, the webhook deliveries):
//! the loops that claim and handle one item at a time until shutdown, and the wait between
//! attempts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Runs `workers` loops (at least one) of `once` until `shutdown`; an item in hand is
/// finished. `once` answers whether it found an item: a loop that found none waits
/// `poll_interval`, one that could not reach Postgres backs off (up to 5 s).
pub async fn run<W, F, Fut>(
    worker: Arc<W>,
    workers: usize,
    poll_interval: Duration,
    name: &'static str,
    shutdown: watch::Receiver<bool>,
    once: F,
) where
    W: Send + Sync + 'static,
    F: Fn(Arc<W>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Result<bool, anyhow::Error>> + Send,
{
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let worker = Arc::clone(&worker);
        let mut shutdown = shutdown.clone();
        loops.spawn(async move {
            let mut failures = 0u32;
            while !*shutdown.borrow() {
                let wait = match once(Arc::clone(&worker)).await {
                    Ok(true) => {
                        failures = 0;
                        continue;
                    }
                    Ok(false) => {
                        failures = 0;
                        poll_interval
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(
                            worker = name,
                            error = format!("{error:#}"),
                            "a worker could not reach Postgres; retrying"
                        );
                        Duration::from_millis((100u64 << failures.min(6)).min(5_000))
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        });
    }
    while loops.join_next().await.is_some() {}
}

/// The wait after attempt `attempt`: a random time between half and all of
/// min(`max`, `base` × 2^(attempt−1)), so failed items do not come back in lockstep.
pub fn backoff(base: Duration, max: Duration, attempt: i32) -> chrono::Duration {
    let step = base
        .saturating_mul(1u32 << (attempt - 1).clamp(0, 20))
        .min(max);
    let jitter = getrandom::u64().unwrap_or(u64::MAX / 2) as f64 / u64::MAX as f64;
    chrono::Duration::from_std(step.mul_f64(0.5 + 0.5 * jitter)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_with_jitter_and_stop_at_the_maximum() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 1..8 {
            let step = (100i64 << (attempt - 1)).min(1000);
            for _ in 0..50 {
                let wait = backoff(base, max, attempt).num_milliseconds();
                assert!(
                    wait >= step / 2 && wait <= step,
                    "attempt {attempt}: {wait} ms"
                );
            }
        }
    }
}
