//! Configuration from environment variables, with defaults that work on a developer
//! machine. Every variable is listed in the README.

use std::net::SocketAddr;
use std::path::PathBuf;

use infra::Secret;
use infra::auth::PasswordParams;
use infra::config::{parse, var};
use infra::crypto::MasterKey;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `COMMAND_API_ADDR`, default `127.0.0.1:8080`.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`, default `postgres://root@127.0.0.1:5432/eventra`.
    pub database_url: infra::ConnectionUrl,
    /// `DATABASE_POOL_SIZE`, default 16.
    pub database_pool_size: usize,
    /// `DATABASE_POOL_WAIT_MS`, default 2000: how long a request waits for a connection
    /// before it is answered 503 with `Retry-After`.
    pub database_pool_wait: std::time::Duration,
    /// `EVENTRA_DATA_DIR`, default `.data`: where generated local keys live.
    pub data_dir: PathBuf,
    /// `EVENTRA_MASTER_KEY` (base64 of 32 bytes); generated into the data dir when unset.
    pub master_key: Option<Secret<String>>,
    /// `JWT_SIGNING_KEY`: the Ed25519 key access tokens are signed with (base64 of a 32-byte
    /// seed, or PKCS#8 PEM); required unless `EVENTRA_DEV=1`, which keeps one in the data dir.
    pub signing_key: Option<Secret<String>>,
    /// `ACCESS_TOKEN_TTL_SECONDS`, default 900.
    pub access_token_ttl_seconds: i64,
    /// `REFRESH_TOKEN_TTL_SECONDS`, default 30 days.
    pub refresh_token_ttl_seconds: i64,
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`.
    pub password_params: PasswordParams,
    /// `MAX_BODY_BYTES`, default 65536.
    pub max_body_bytes: usize,
    /// `COMMAND_RETRIES`: how many times a command is decided again after a version
    /// conflict before answering 409; default 5.
    pub command_retries: u32,
    /// `LOCKOUT_THRESHOLD` (default 5; 0 turns it off) wrong passwords within
    /// `LOCKOUT_WINDOW_SECS` (900) lock an account for `LOCKOUT_SECS` (60), doubling with each
    /// lock up to `LOCKOUT_MAX_SECS` (86400).
    pub lockout: domain::lockout::LockoutPolicy,
    /// `RATE_LIMIT_LOGIN_PER_ADDRESS_PER_HOUR`, default 30: logins (and password reset
    /// requests) per tenant and address an hour, from any number of clients.
    pub login_per_address_per_hour: u32,
    /// `IMPORT_MAX_BYTES`, default 33554432 (32 MiB): the largest import file.
    pub import_max_bytes: usize,
    /// `IMPORT_ROWS_PER_HOUR`, default 10000: rows a tenant may upload for import an hour
    /// (premium ×5; platform admins are not limited).
    pub import_rows_per_hour: u32,
    /// `EMAIL_VERIFICATION_TTL_MINUTES`, default 1440: how long a link that confirms an
    /// address (after signup, or to move to a new one) works.
    pub email_verification_ttl: chrono::Duration,
    /// `IDEMPOTENCY_KEY_TTL_HOURS`, default 24: how long an idempotency key is remembered.
    pub idempotency_key_ttl_hours: i64,
    /// `LOG_FORMAT=json` for JSON lines.
    pub log_json: bool,
    /// Rate limits and metric labels (`RATE_LIMIT_*`, `REDIS_URL`, `METRICS_MAX_TENANT_LABELS`).
    pub traffic: api_common::traffic::TrafficSettings,
    /// `WEBHOOK_ALLOWED_HOSTS`: hosts (`host`, `host:port`) or networks (CIDR) webhooks may
    /// call although they are private; unset: public addresses only, over https.
    pub webhook_targets: infra::webhooks::TargetPolicy,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = PasswordParams::default();
        Ok(Settings {
            listen_addr: parse("COMMAND_API_ADDR", "127.0.0.1:8080")?,
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/eventra".into())
                .into(),
            database_pool_size: parse("DATABASE_POOL_SIZE", "16")?,
            database_pool_wait: std::time::Duration::from_millis(parse(
                "DATABASE_POOL_WAIT_MS",
                "2000",
            )?),
            data_dir: PathBuf::from(var("EVENTRA_DATA_DIR").unwrap_or_else(|| ".data".into())),
            master_key: var("EVENTRA_MASTER_KEY").map(Secret::new),
            signing_key: var("JWT_SIGNING_KEY").map(Secret::new),
            access_token_ttl_seconds: parse("ACCESS_TOKEN_TTL_SECONDS", "900")?,
            refresh_token_ttl_seconds: parse("REFRESH_TOKEN_TTL_SECONDS", "2592000")?,
            password_params: PasswordParams {
                memory_kib: parse("ARGON2_MEMORY_KIB", &defaults.memory_kib.to_string())?,
                iterations: parse("ARGON2_ITERATIONS", &defaults.iterations.to_string())?,
                parallelism: parse("ARGON2_PARALLELISM", &defaults.parallelism.to_string())?,
            },
            max_body_bytes: parse("MAX_BODY_BYTES", "65536")?,
            command_retries: parse("COMMAND_RETRIES", "5")?,
            lockout: domain::lockout::LockoutPolicy {
                threshold: parse("LOCKOUT_THRESHOLD", "5")?,
                window: chrono::Duration::seconds(parse("LOCKOUT_WINDOW_SECS", "900")?),
                first_lock: chrono::Duration::seconds(parse("LOCKOUT_SECS", "60")?),
                longest_lock: chrono::Duration::seconds(parse("LOCKOUT_MAX_SECS", "86400")?),
            },
            login_per_address_per_hour: parse("RATE_LIMIT_LOGIN_PER_ADDRESS_PER_HOUR", "30")?,
            import_max_bytes: parse("IMPORT_MAX_BYTES", "33554432")?,
            import_rows_per_hour: parse("IMPORT_ROWS_PER_HOUR", "10000")?,
            email_verification_ttl: chrono::Duration::minutes(parse(
                "EMAIL_VERIFICATION_TTL_MINUTES",
                &domain::links::DEFAULT_VERIFICATION_TTL_MINUTES.to_string(),
            )?),
            idempotency_key_ttl_hours: parse("IDEMPOTENCY_KEY_TTL_HOURS", "24")?,
            log_json: var("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
            traffic: api_common::traffic::TrafficSettings::from_env()?,
            webhook_targets: infra::webhooks::TargetPolicy::parse(
                &var("WEBHOOK_ALLOWED_HOSTS").unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        })
    }

    /// The master key: configured, or read from / generated into the data dir.
    pub fn load_master_key(&self) -> anyhow::Result<MasterKey> {
        infra::config::master_key(
            self.master_key.as_ref(),
            &self.data_dir,
            infra::config::dev_mode(),
        )
    }

    /// The token signing key: configured, or read from / generated into the data dir.
    pub fn load_signing_key(&self) -> anyhow::Result<infra::tokens::SigningKey> {
        infra::config::signing_key(
            self.signing_key.as_ref(),
            &self.data_dir,
            infra::config::dev_mode(),
        )
    }
}
