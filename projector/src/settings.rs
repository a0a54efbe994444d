//! Configuration of the projector from environment variables (listed in the README).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use infra::config::{parse, var};
use infra::crypto::MasterKey;

use crate::email::projection::EmailPolicy;
use crate::email::worker::WorkerSettings;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`.
    pub database_url: infra::ConnectionUrl,
    /// `DATABASE_POOL_SIZE`, default 8.
    pub database_pool_size: usize,
    /// `NATS_URL`, default `nats://127.0.0.1:4222`.
    pub nats_url: infra::ConnectionUrl,
    pub stream: StreamSettings,
    /// `EVENTRA_DATA_DIR` and `EVENTRA_MASTER_KEY`: the key that opens personal data.
    pub data_dir: PathBuf,
    pub master_key: Option<infra::Secret<String>>,
    /// `PROJECTOR_BATCH_SIZE`, default 256: messages fetched and applied per transaction.
    pub batch_size: usize,
    /// `RELAY_POLL_INTERVAL_MS`, default 1000: how often the relay looks for events when
    /// no notification woke it.
    pub relay_poll_interval: Duration,
    /// `TIMER_POLL_INTERVAL_MS`, default 1000: how often the scheduler looks for due timers.
    pub timer_poll_interval: Duration,
    /// `TIMER_LEASE_SECS`, default 30: how long a claimed timer stays with its scheduler.
    pub timer_lease: Duration,
    /// `IMPORT_WORKERS` (default 1; 0: this projector imports nothing), `IMPORT_BATCH_ROWS`
    /// (500), `IMPORT_LEASE_SECS` (30), `IMPORT_POLL_INTERVAL_MS` (500).
    pub import_workers: usize,
    pub import_batch_rows: i64,
    pub import_lease: Duration,
    pub import_poll_interval: Duration,
    /// `IMPORT_MAX_BATCH_FAILURES`, default 5.
    pub import_max_failures: i32,
    /// `PASSWORD_RESET_TTL_MINUTES`, default 30: how long a password reset link works.
    pub password_reset_ttl: chrono::Duration,
    /// `SEARCH_INDEX_DIR`, default `$EVENTRA_DATA_DIR/search`: the search index this
    /// projector writes (the query API on the same host reads it).
    pub search_dir: PathBuf,
    /// `PROJECTOR_ADDR`, default `127.0.0.1:8082`: `/health`, `/ready`, `/metrics`.
    pub http_addr: std::net::SocketAddr,
    /// `METRICS_TOKEN`: who may read `/metrics`.
    pub metrics_access: api_common::operations::MetricsAccess,
    /// `LOG_FORMAT=json`.
    pub log_json: bool,
    /// Which events mail whom, and when.
    pub email_policy: EmailPolicy,
    /// How the worker sends.
    pub email_worker: WorkerSettings,
    /// `SMTP_URL`: `smtp://[user:password@]host:port[?tls=required]` or `smtps://…`; without
    /// it, emails are written as `.eml` files to `EVENTRA_DATA_DIR/mail/`.
    pub smtp_url: Option<infra::ConnectionUrl>,
    /// `SMTP_TIMEOUT_SECS`, default 15.
    pub smtp_timeout: Duration,
    /// `SMTP_CA_FILE`: PEM certificates to trust for the SMTP server instead of the public
    /// web's roots (a relay with a certificate of the organisation's own CA).
    pub smtp_ca_file: Option<PathBuf>,
    /// `EMAIL_FILE_RETENTION_HOURS`, default 168 (a week): how long the zero-configuration
    /// mailer keeps its `.eml` files.
    pub mail_file_retention: Duration,
    /// How webhook deliveries are sent (`WEBHOOK_*`, `PUBLIC_API_URL`).
    pub webhooks: crate::webhooks::worker::WebhookSettings,
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
                .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/eventra".into())
                .into(),
            database_pool_size: parse("DATABASE_POOL_SIZE", "8")?,
            nats_url: var("NATS_URL")
                .unwrap_or_else(|| "nats://127.0.0.1:4222".into())
                .into(),
            stream: StreamSettings {
                name: var("NATS_STREAM").unwrap_or_else(|| "EVENTRA_EVENTS".into()),
                subject_prefix: var("NATS_SUBJECT_PREFIX").unwrap_or_else(|| "eventra".into()),
                replicas: parse("NATS_STREAM_REPLICAS", "1")?,
                max_deliver: parse("NATS_MAX_DELIVER", "10")?,
            },
            data_dir: PathBuf::from(var("EVENTRA_DATA_DIR").unwrap_or_else(|| ".data".into())),
            master_key: var("EVENTRA_MASTER_KEY").map(infra::Secret::new),
            batch_size: parse("PROJECTOR_BATCH_SIZE", "256")?,
            relay_poll_interval: Duration::from_millis(parse("RELAY_POLL_INTERVAL_MS", "1000")?),
            timer_poll_interval: Duration::from_millis(parse("TIMER_POLL_INTERVAL_MS", "1000")?),
            timer_lease: Duration::from_secs(parse("TIMER_LEASE_SECS", "30")?),
            import_workers: parse("IMPORT_WORKERS", "1")?,
            import_batch_rows: parse("IMPORT_BATCH_ROWS", "500")?,
            import_lease: Duration::from_secs(parse("IMPORT_LEASE_SECS", "30")?),
            import_poll_interval: Duration::from_millis(parse("IMPORT_POLL_INTERVAL_MS", "500")?),
            import_max_failures: parse("IMPORT_MAX_BATCH_FAILURES", "5")?,
            password_reset_ttl: chrono::Duration::minutes(parse(
                "PASSWORD_RESET_TTL_MINUTES",
                &domain::links::DEFAULT_RESET_TTL_MINUTES.to_string(),
            )?),
            http_addr: parse("PROJECTOR_ADDR", "127.0.0.1:8082")?,
            metrics_access: api_common::operations::MetricsAccess::from_env()?,
            search_dir: search_dir(),
            log_json: var("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
            email_policy: EmailPolicy {
                coalesce_window: Duration::from_millis(parse("EMAIL_COALESCE_WINDOW_MS", "60000")?),
                max_event_age: Duration::from_secs(
                    parse::<u64>("EMAIL_MAX_EVENT_AGE_HOURS", "24")?.saturating_mul(3600),
                ),
            },
            email_worker: WorkerSettings {
                from: var("EMAIL_FROM")
                    .unwrap_or_else(|| "Eventra <no-reply@eventra.localhost>".into()),
                workers: parse("EMAIL_WORKERS", "2")?,
                poll_interval: Duration::from_millis(parse("EMAIL_POLL_INTERVAL_MS", "250")?),
                lease: Duration::from_secs(parse("EMAIL_LEASE_SECS", "60")?),
                max_attempts: parse("EMAIL_MAX_ATTEMPTS", "8")?,
                retry_base: Duration::from_millis(parse("EMAIL_RETRY_BASE_MS", "30000")?),
                retry_max: Duration::from_millis(parse("EMAIL_RETRY_MAX_MS", "3600000")?),
                rate_limit_per_hour: parse::<NonZeroU32>("EMAIL_RATE_LIMIT_PER_HOUR", "10")?
                    .get()
                    .into(),
                alerts_per_hour: parse::<NonZeroU32>("EMAIL_ALERTS_PER_HOUR", "5")?
                    .get()
                    .into(),
                tenant_limit_per_hour: parse::<NonZeroU32>("EMAIL_TENANT_LIMIT_PER_HOUR", "10000")?
                    .get()
                    .into(),
                public_url: var("PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            },
            smtp_url: var("SMTP_URL").map(infra::ConnectionUrl::from),
            smtp_timeout: Duration::from_secs(parse("SMTP_TIMEOUT_SECS", "15")?),
            smtp_ca_file: var("SMTP_CA_FILE").map(PathBuf::from),
            mail_file_retention: Duration::from_secs(
                3600 * parse::<u64>("EMAIL_FILE_RETENTION_HOURS", "168")?,
            ),
            webhooks: crate::webhooks::worker::WebhookSettings {
                workers: parse("WEBHOOK_WORKERS", "2")?,
                poll_interval: Duration::from_millis(parse("WEBHOOK_POLL_INTERVAL_MS", "250")?),
                lease: Duration::from_secs(parse("WEBHOOK_LEASE_SECS", "60")?),
                timeout: Duration::from_millis(parse("WEBHOOK_TIMEOUT_MS", "10000")?),
                max_attempts: parse::<NonZeroU32>("WEBHOOK_MAX_ATTEMPTS", "12")?
                    .get()
                    .try_into()
                    .unwrap_or(i32::MAX),
                retry_base: Duration::from_millis(parse("WEBHOOK_RETRY_BASE_MS", "5000")?),
                retry_max: Duration::from_millis(parse("WEBHOOK_RETRY_MAX_MS", "3600000")?),
                disable_after: Duration::from_secs(
                    parse::<u64>("WEBHOOK_DISABLE_AFTER_HOURS", "24")?.saturating_mul(3600),
                ),
                targets: infra::webhooks::TargetPolicy::parse(
                    &var("WEBHOOK_ALLOWED_HOSTS").unwrap_or_default(),
                )
                .map_err(|e| anyhow::anyhow!(e))?,
                public_api_url: var("PUBLIC_API_URL")
                    .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            },
        })
    }

    pub fn load_master_key(&self) -> anyhow::Result<MasterKey> {
        infra::config::master_key(
            self.master_key.as_ref(),
            &self.data_dir,
            infra::config::dev_mode(),
        )
    }
}

impl Settings {
    /// Where the zero-configuration mailer writes: `EVENTRA_DATA_DIR/mail/`.
    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.join("mail")
    }

    pub fn mailer(&self) -> anyhow::Result<crate::email::transport::Mailer> {
        crate::email::transport::Mailer::new(
            self.smtp_url.as_deref(),
            self.mail_dir(),
            self.smtp_timeout,
            self.smtp_ca_file.as_deref(),
        )
    }
}

/// `SEARCH_INDEX_DIR`, or `search` under `EVENTRA_DATA_DIR` (default `.data`).
pub fn search_dir() -> PathBuf {
    read_models::search::configured_dir()
}
