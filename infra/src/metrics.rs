//! The process's Prometheus recorder, shared by every service: installed once (also when
//! several services run in one process, as in tests), rendered by each `/metrics` route.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds, for every histogram.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render() -> String {
    recorder().map(PrometheusHandle::render).unwrap_or_default()
}

/// Publishes a connection pool's usage as `eventra_db_pool_connections{service,state}`.
pub fn record_pool(service: &'static str, pool: &deadpool_postgres::Pool) {
    let status = pool.status();
    let in_use = status.size.saturating_sub(status.available);
    metrics::gauge!("eventra_db_pool_connections", "service" => service, "state" => "in_use")
        .set(in_use as f64);
    metrics::gauge!("eventra_db_pool_connections", "service" => service, "state" => "idle")
        .set(status.available as f64);
    metrics::gauge!("eventra_db_pool_connections", "service" => service, "state" => "max")
        .set(status.max_size as f64);
    metrics::gauge!("eventra_db_pool_waiting", "service" => service).set(status.waiting as f64);
}
