//! Configuration of the projector from environment variables (listed in the README).

use std::path::PathBuf;
use std::time::Duration;

use infra::config::{parse, var};
use infra::crypto::MasterKey;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_POOL_SIZE`, default 8.
    pub database_pool_size: usize,
    /// `NATS_URL`, default `nats://127.0.0.1:4222`.
    pub nats_url: String,
    pub stream: StreamSettings,
    /// `EVENTRA_DATA_DIR` and `EVENTRA_MASTER_KEY`: the key that opens personal data.
    pub data_dir: PathBuf,
    pub master_key: Option<String>,
    /// `PROJECTOR_BATCH_SIZE`, default 256: messages fetched and applied per transaction.
    pub batch_size: usize,
    /// `RELAY_POLL_INTERVAL_MS`, default 1000: how often the relay looks for events when
    /// no notification woke it.
    pub relay_poll_interval: Duration,
    /// `SEARCH_INDEX_DIR`, default `$EVENTRA_DATA_DIR/search`: the search index this
    /// projector writes (the query API on the same host reads it).
    pub search_dir: PathBuf,
    /// `PROJECTOR_ADDR`, default `127.0.0.1:8082`: `/health`, `/ready`, `/metrics`.
    pub http_addr: std::net::SocketAddr,
    /// `LOG_FORMAT=json`.
    pub log_json: bool,
}

/// Where events are published.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// `NATS_STREAM`, default `EVENTRA_EVENTS`.
    pub name: String,
    /// `NATS_SUBJECT_PREFIX`, default `eventra`: subjects are `<prefix>.events.<tenant>.<type>`.
    pub subject_prefix: String,
    /// `NATS_STREAM_REPLICAS`, default 1 (3 on a NATS cluster).
    pub replicas: usize,
    /// `NATS_MAX_DELIVER`, default 10: deliveries of one message to a consumer before
    /// JetStream gives up on it (the projector then fills the gap from the event store).
    pub max_deliver: i64,
}

impl StreamSettings {
    pub fn subjects(&self) -> String {
        format!("{}.events.>", self.subject_prefix)
    }

    pub fn subject_for(&self, tenant_id: uuid::Uuid, event_type: &str) -> String {
        format!(
            "{}.events.{}.{}",
            self.subject_prefix, tenant_id, event_type
        )
    }

    /// The durable consumer of a projection.
    pub fn consumer_name(&self, projection: &str) -> String {
        format!("{}-{}", self.subject_prefix, projection)
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Settings {
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/eventra".into()),
            database_pool_size: parse("DATABASE_POOL_SIZE", "8")?,
            nats_url: var("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            stream: StreamSettings {
                name: var("NATS_STREAM").unwrap_or_else(|| "EVENTRA_EVENTS".into()),
                subject_prefix: var("NATS_SUBJECT_PREFIX").unwrap_or_else(|| "eventra".into()),
                replicas: parse("NATS_STREAM_REPLICAS", "1")?,
                max_deliver: parse("NATS_MAX_DELIVER", "10")?,
            },
            data_dir: PathBuf::from(var("EVENTRA_DATA_DIR").unwrap_or_else(|| ".data".into())),
            master_key: var("EVENTRA_MASTER_KEY"),
            batch_size: parse("PROJECTOR_BATCH_SIZE", "256")?,
            relay_poll_interval: Duration::from_millis(parse("RELAY_POLL_INTERVAL_MS", "1000")?),
            http_addr: parse("PROJECTOR_ADDR", "127.0.0.1:8082")?,
            search_dir: search_dir(),
            log_json: var("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
        })
    }

    pub fn load_master_key(&self) -> anyhow::Result<MasterKey> {
        infra::config::master_key(
            self.master_key.clone().map(infra::Secret::new).as_ref(),
            &self.data_dir,
        )
    }
}

/// `SEARCH_INDEX_DIR`, or `search` under `EVENTRA_DATA_DIR` (default `.data`).
pub fn search_dir() -> PathBuf {
    var("SEARCH_INDEX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(var("EVENTRA_DATA_DIR").unwrap_or_else(|| ".data".into())).join("search")
        })
}
