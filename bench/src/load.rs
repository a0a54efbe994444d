//! Load generation and what it measured.
//!
//! Closed loop: `concurrency` workers each send their next request when the previous one
//! answered, for a fixed time; throughput is what the system sustained at that concurrency.
//! Open loop: requests are due at fixed intervals whatever the system does, and latency is
//! measured from the time a request was *due*, so a stall shows up in the percentiles
//! instead of silently lowering the rate (no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

/// One request's outcome: the HTTP status (0 for a transport error).
pub type Outcome = u16;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers that were not the expected success, by status (0: transport error).
    pub errors: BTreeMap<u16, u64>,
    /// The share of the machine each process group spent meanwhile, in percent (`cpu`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_percent: BTreeMap<String, f64>,
}

impl Summary {
    pub fn of(mut latencies_ms: Vec<f64>, errors: BTreeMap<u16, u64>, seconds: f64) -> Summary {
        latencies_ms.sort_by(f64::total_cmp);
        let requests = latencies_ms.len() as u64;
        let at = |q: f64| -> f64 {
            if latencies_ms.is_empty() {
                return 0.0;
            }
            let index =
                ((q * latencies_ms.len() as f64).ceil() as usize).clamp(1, latencies_ms.len()) - 1;
            round(latencies_ms[index])
        };
        Summary {
            requests,
            seconds: round(seconds),
            per_second: round(requests as f64 / seconds.max(f64::EPSILON)),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
            errors,
            cpu_percent: BTreeMap::new(),
        }
    }
}

pub fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[derive(Default)]
struct Recorder {
    latencies_ms: Vec<f64>,
    errors: BTreeMap<u16, u64>,
}

/// Runs `concurrency` workers for `duration`; `request(worker, n)` sends one request and
/// says how it ended; `ok` says which outcomes count as successes.
pub async fn closed<F, Fut>(
    concurrency: usize,
    duration: Duration,
    request: F,
    ok: fn(Outcome) -> bool,
) -> Summary
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let request = Arc::new(request);
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let cpu = crate::cpu::sample();
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let request = Arc::clone(&request);
        let recorder = Arc::clone(&recorder);
        workers.spawn(async move {
            let mut local = Recorder::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = request(worker, n).await;
                n += 1;
                if ok(outcome) {
                    local
                        .latencies_ms
                        .push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    *local.errors.entry(outcome).or_default() += 1;
                }
            }
            let mut shared = recorder.lock().await;
            shared.latencies_ms.extend(local.latencies_ms);
            for (status, count) in local.errors {
                *shared.errors.entry(status).or_default() += count;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let recorder = std::mem::take(&mut *recorder.lock().await);
    let mut summary = Summary::of(recorder.latencies_ms, recorder.errors, seconds);
    summary.cpu_percent = crate::cpu::split_since(&cpu);
    summary
}

/// Sends `rate` requests per second for `duration`, each at its due time (whatever the
/// previous ones are doing); latency runs from the due time to the answer.
/// `request(n)` returns how it ended and, optionally, a second latency it measured itself
/// (milliseconds), collected separately.
pub async fn open<F, Fut>(rate: f64, duration: Duration, request: F) -> (Summary, Vec<f64>)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (bool, Outcome, Option<f64>)> + Send + 'static,
{
    let request = Arc::new(request);
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let total = (duration.as_secs_f64() * rate).max(1.0) as u64;
    let cpu = crate::cpu::sample();
    let started = Instant::now();
    let mut inflight = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let request = Arc::clone(&request);
        inflight.spawn(async move {
            let (ok, outcome, extra) = request(n).await;
            (ok, outcome, due.elapsed().as_secs_f64() * 1000.0, extra)
        });
    }
    let mut latencies = Vec::new();
    let mut extras = Vec::new();
    let mut errors = BTreeMap::new();
    while let Some(done) = inflight.join_next().await {
        if let Ok((ok, outcome, latency, extra)) = done {
            if ok {
                latencies.push(latency);
                extras.extend(extra);
            } else {
                *errors.entry(outcome).or_default() += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = Summary::of(latencies, errors, seconds);
    summary.cpu_percent = crate::cpu::split_since(&cpu);
    (summary, extras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let summary = Summary::of((1..=100).map(f64::from).collect(), BTreeMap::new(), 2.0);
        assert_eq!(summary.requests, 100);
        assert_eq!(summary.per_second, 50.0);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.max_ms, 100.0);
        let empty = Summary::of(Vec::new(), BTreeMap::new(), 1.0);
        assert_eq!(empty.p99_ms, 0.0);
    }

    #[tokio::test]
    async fn an_open_loop_charges_a_stall_to_the_requests_due_during_it() {
        // Ten requests due 10 ms apart; the first one takes 100 ms. Those due during the
        // stall are answered quickly, but the loop keeps its schedule, so none of them
        // waits for the first: their latencies stay small, the first one's is 100 ms.
        let (summary, _) = open(100.0, Duration::from_millis(100), |n| async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (true, 200, None)
        })
        .await;
        assert_eq!(summary.requests, 10);
        assert!(summary.max_ms >= 100.0, "{summary:?}");
        assert!(summary.p50_ms < 50.0, "{summary:?}");
    }
}
