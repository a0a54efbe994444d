//! Configuration of the query API from environment variables (listed in the README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use infra::config::{parse, var};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `QUERY_API_ADDR`, default `127.0.0.1:8081`.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: infra::ConnectionUrl,
    /// `DATABASE_POOL_SIZE`, default 16.
    pub database_pool_size: usize,
    /// `DATABASE_POOL_WAIT_MS`, default 2000: how long a request waits for a connection
    /// before it is answered 503 with `Retry-After`.
    pub database_pool_wait: Duration,
    /// `MAX_POSITION_WAITS_PER_TENANT`, default 32: reads of one tenant waiting for an
    /// `X-Min-Position` at once; more are answered 503 at once.
    pub max_waits_per_tenant: usize,
    /// `EVENTRA_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `READ_YOUR_WRITES_TIMEOUT_MS`, default 3000: how long a query with `X-Min-Position`
    /// waits for the projection before answering 503.
    pub read_your_writes_timeout: Duration,
    /// `SEARCH_INDEX_DIR`, default `$EVENTRA_DATA_DIR/search`: the index the projector on
    /// this host writes.
    pub search_dir: PathBuf,
    /// `AUTH_CACHE_TTL_MS`, default 1000: how long a session this instance authenticated is
    /// trusted without asking Postgres, unless a change to it is announced sooner (ADR 0031);
    /// `0` asks Postgres on every request.
    pub auth_cache_ttl: Duration,
    /// `LOG_FORMAT=json`.
    pub log_json: bool,
    /// Rate limits and metric labels (`RATE_LIMIT_*`, `REDIS_URL`, `METRICS_MAX_TENANT_LABELS`).
    pub traffic: api_common::traffic::TrafficSettings,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Settings {
            listen_addr: parse("QUERY_API_ADDR", "127.0.0.1:8081")?,
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/eventra".into())
                .into(),
            database_pool_size: parse("DATABASE_POOL_SIZE", "16")?,
            database_pool_wait: Duration::from_millis(parse("DATABASE_POOL_WAIT_MS", "2000")?),
            max_waits_per_tenant: parse("MAX_POSITION_WAITS_PER_TENANT", "32")?,
            data_dir: PathBuf::from(var("EVENTRA_DATA_DIR").unwrap_or_else(|| ".data".into())),
            read_your_writes_timeout: Duration::from_millis(parse(
                "READ_YOUR_WRITES_TIMEOUT_MS",
                "3000",
            )?),
            search_dir: read_models::search::configured_dir(),
            auth_cache_ttl: Duration::from_millis(parse("AUTH_CACHE_TTL_MS", "1000")?),
            log_json: var("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
            traffic: api_common::traffic::TrafficSettings::from_env()?,
        })
    }
}
