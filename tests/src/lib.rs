//! The test harness: a command API on a free port over a fresh database per test.

mod calls;
pub mod proxy;
pub mod receiver;
pub mod smtp;

use std::str::FromStr;

use command_api::{Application, Settings};
use infra::Secret;
use infra::auth::PasswordParams;
use infra::crypto::MasterKey;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

/// The Postgres server the tests use (`TEST_DATABASE_URL`, default the local server).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into())
}

/// How long a test waits for a condition before it fails: generous, because it only bounds
/// a wait that should end much sooner (a shared two-core machine can be slow), never a claim
/// about speed.
pub const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `condition` until it holds; fails the test naming `what` it waited for.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            started.elapsed() < WAIT_LIMIT,
            "timed out after {WAIT_LIMIT:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A directory under the system's temporary directory, removed when dropped (also when the
/// test fails).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        TempDir(std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple())))
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test server's port (the tests reach it on 127.0.0.1).
pub fn server_port() -> u16 {
    tokio_postgres::Config::from_str(&server_url())
        .ok()
        .and_then(|config| config.get_ports().first().copied())
        .unwrap_or(5432)
}

pub struct TestApp {
    pub address: String,
    /// The query API, over the same database.
    pub query_address: String,
    pub http: reqwest::Client,
    pub database_url: String,
    pub db: tokio_postgres::Client,
    pub settings: Settings,
}

impl Drop for TestApp {
    /// The test's data directory (search index, mail files) goes with it, pass or fail.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.settings.data_dir);
    }
}

/// An answer: status, headers and the JSON body (or `Value::Null`).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn str(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_default().to_owned()
    }

    pub fn id(&self, field: &str) -> Uuid {
        Uuid::from_str(&self.str(field))
            .unwrap_or_else(|_| panic!("{field} is not an id in {:?}", self.body))
    }

    pub fn is_problem(&self) -> bool {
        self.headers.get("content-type").is_some_and(|v| {
            v.to_str()
                .unwrap_or_default()
                .starts_with("application/problem+json")
        }) && self.body["status"].as_u64() == Some(u64::from(self.status.as_u16()))
            && self.body["title"].is_string()
            && self.body["type"].is_string()
            && self.body["detail"].is_string()
    }
}

/// A tenant with its first admin, logged in.
#[derive(Debug, Clone)]
pub struct TenantFixture {
    pub tenant_id: Uuid,
    pub admin_id: Uuid,
    pub admin_email: String,
    pub admin_token: String,
}

/// A member of a tenant, logged in.
#[derive(Debug, Clone)]
pub struct UserFixture {
    pub user_id: Uuid,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
    pub session_id: Uuid,
}

/// Reads of one tenant the test query API lets wait for a position at once.
pub const QUERY_WAITS_PER_TENANT: usize = 8;

pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        database_url: database_url.to_owned().into(),
        database_pool_size: 10,
        database_pool_wait: std::time::Duration::from_secs(2),
        data_dir: std::env::temp_dir().join(format!("eventra-test-{}", Uuid::new_v4().simple())),
        master_key: Some(Secret::new(MasterKey::generate().expect("rng").to_base64())),
        signing_key: Some(Secret::new(MasterKey::generate().expect("rng").to_base64())),
        access_token_ttl_seconds: 900,
        refresh_token_ttl_seconds: 3600,
        password_params: PasswordParams::default(),
        max_body_bytes: 64 * 1024,
        command_retries: 5,
        lockout: domain::lockout::LockoutPolicy {
            threshold: 5,
            window: chrono::Duration::minutes(15),
            first_lock: chrono::Duration::seconds(60),
            longest_lock: chrono::Duration::days(1),
        },
        login_per_address_per_hour: 1_000_000,
        import_max_bytes: 32 * 1024 * 1024,
        import_rows_per_hour: 1_000_000,
        email_verification_ttl: chrono::Duration::days(1),
        idempotency_key_ttl_hours: 24,
        log_json: false,
        // Generous: tests that exercise the limits set their own.
        traffic: api_common::traffic::TrafficSettings {
            standard_per_hour: 1_000_000,
            premium_per_hour: 1_000_000,
            anonymous_per_hour: 1_000_000,
            member_share_percent: 100,
            trusted_proxies: api_common::client_address::TrustedProxies::default(),
            redis_url: None,
            key_prefix: format!("eventra-test:{}", Uuid::new_v4().simple()),
            limit_cache: std::time::Duration::ZERO,
            max_tenant_labels: 100,
            metrics_access: api_common::operations::MetricsAccess::token(METRICS_TOKEN)
                .expect("a long enough token"),
            refresh_per_session_per_hour: 1_000_000,
        },
        // The tests' receivers listen on loopback.
        webhook_targets: infra::webhooks::TargetPolicy::parse("127.0.0.0/8, ::1")
            .expect("a policy"),
    }
}

/// The operators' token the test services serve `/metrics` to.
pub const METRICS_TOKEN: &str = "test-metrics-token-7f3a9c2e";

/// A fresh, empty database on the test server; returns its URL.
/// An HTTP client for the tests. reqwest's TLS is rustls without a crypto provider of its own
/// (the projector's webhooks bring theirs): ring is installed as the process's provider.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub async fn fresh_database() -> String {
    let server = server_url();
    let mut config = tokio_postgres::Config::from_str(&server).expect("TEST_DATABASE_URL");
    let name = format!("eventra_test_{}", Uuid::new_v4().simple());
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to Postgres");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    config.dbname(&name);
    let user = config.get_user().unwrap_or("root").to_owned();
    let host = "127.0.0.1";
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{user}@{host}:{port}/{name}")
}

pub async fn connect(database_url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
        let database_url = fresh_database().await;
        let mut settings = test_settings(&database_url);
        customise(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("build the command API");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let query = query_api::Application::build(query_api::Settings {
            listen_addr: "127.0.0.1:0".parse().expect("address"),
            database_url: database_url.clone().into(),
            database_pool_size: 6,
            database_pool_wait: settings.database_pool_wait,
            max_waits_per_tenant: QUERY_WAITS_PER_TENANT,
            data_dir: settings.data_dir.clone(),
            read_your_writes_timeout: std::time::Duration::from_millis(1500),
            search_dir: settings.data_dir.join("search"),
            auth_cache_ttl: std::time::Duration::from_millis(1000),
            log_json: false,
            traffic: settings.traffic.clone(),
        })
        .await
        .expect("build the query API");
        let query_address = format!("http://127.0.0.1:{}", query.port());
        tokio::spawn(query.run_until_stopped());
        let db = connect(&database_url).await;
        TestApp {
            address,
            query_address,
            http: http_client(),
            database_url,
            db,
            settings,
        }
    }

    /// Another command API instance on this app's database (another host behind the same
    /// balancer), with the settings `customise` makes of this app's; its address.
    pub async fn spawn_command_api(&self, customise: impl FnOnce(&mut Settings)) -> String {
        let mut settings = self.settings.clone();
        customise(&mut settings);
        let app = Application::build(settings)
            .await
            .expect("build another command API");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }

    /// Reads from the query API at `min_position` as a client following the contract does:
    /// a 503 "not caught up yet" is asked again (the view is behind on a loaded machine).
    pub async fn query_caught_up(&self, path: &str, token: &str, min_position: i64) -> Answer {
        let started = std::time::Instant::now();
        loop {
            let answer = self.query(path, Some(token), Some(min_position)).await;
            let behind = answer.status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && answer.body["type"] == "urn:eventra:problem:not-caught-up";
            if !behind || started.elapsed() > WAIT_LIMIT {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Asks the query API with `token` until it answers 401, failing if that takes longer
    /// than a second (the most another instance may remember an ended session, ADR 0031;
    /// half a second more is allowed for the requests themselves on a loaded machine).
    pub async fn query_refused_within_a_second(&self, path: &str, token: &str) -> Answer {
        let started = std::time::Instant::now();
        loop {
            let answer = self.query(path, Some(token), None).await;
            if answer.status == reqwest::StatusCode::UNAUTHORIZED {
                assert!(answer.is_problem());
                return answer;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_millis(1_500),
                "the query API still accepted the token after {:?}: {answer:?}",
                started.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.address, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A GET on the query API, optionally waiting for `min_position`.
    pub async fn query(
        &self,
        path: &str,
        token: Option<&str>,
        min_position: Option<i64>,
    ) -> Answer {
        let mut request = self.http.get(format!("{}{}", self.query_address, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(position) = min_position {
            request = request.header("X-Min-Position", position.to_string());
        }
        self.send(request).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.request(Method::DELETE, path, token, None).await
    }

    /// The tenant's admin erases `user_id` (`DELETE …/users/{user_id}?mode=erase`).
    pub async fn erase(&self, tenant: &TenantFixture, user_id: Uuid) -> Answer {
        self.delete(
            &format!(
                "/v1/tenants/{}/users/{user_id}?mode=erase",
                tenant.tenant_id
            ),
            Some(&tenant.admin_token),
        )
        .await
    }

    pub async fn sign_up_tenant(&self, name: &str) -> TenantFixture {
        let admin_email = format!(
            "admin-{}@{}.example.com",
            Uuid::new_v4().simple(),
            name.to_lowercase()
        );
        let answer = self
            .post(
                "/v1/tenants",
                None,
                json!({"name": name, "admin": {"email": admin_email, "password": PASSWORD, "display_name": format!("{name} Admin")}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        let tenant_id = answer.id("tenant_id");
        let login = self.log_in(tenant_id, &admin_email, PASSWORD).await;
        assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.body);
        TenantFixture {
            tenant_id,
            admin_id: answer.id("admin_user_id"),
            admin_email,
            admin_token: login.str("access_token"),
        }
    }

    pub async fn log_in(&self, tenant_id: Uuid, email: &str, password: &str) -> Answer {
        self.post(
            &format!("/v1/tenants/{tenant_id}/sessions"),
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs a user up under the tenant and logs them in.
    pub async fn sign_up_user(&self, tenant_id: Uuid, display_name: &str) -> UserFixture {
        let email = format!(
            "{}-{}@example.com",
            display_name.to_lowercase().replace(' ', "."),
            Uuid::new_v4().simple()
        );
        let answer = self
            .post(
                &format!("/v1/tenants/{tenant_id}/users"),
                None,
                json!({"email": email, "password": PASSWORD, "display_name": display_name}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        let login = self.log_in(tenant_id, &email, PASSWORD).await;
        assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.body);
        UserFixture {
            user_id: answer.id("user_id"),
            email,
            token: login.str("access_token"),
            refresh_token: login.str("refresh_token"),
            session_id: login.id("session_id"),
        }
    }

    pub async fn event_count(&self) -> i64 {
        self.db
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .expect("count events")
            .get(0)
    }

    /// The event types of one stream, in order.
    pub async fn stream_types(&self, aggregate_id: Uuid) -> Vec<String> {
        self.db
            .query(
                "SELECT type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
                &[&aggregate_id],
            )
            .await
            .expect("read a stream")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// A user's display name in the users read model, if they have a row.
    pub async fn projected_name(&self, user_id: Uuid) -> Option<String> {
        self.db
            .query_opt(
                "SELECT display_name FROM rm_users WHERE user_id = $1",
                &[&user_id],
            )
            .await
            .expect("the users model")
            .map(|row| row.get(0))
    }

    /// How many of this database's backends wait on a lock now (asked on the harness's own
    /// connection: a transaction's own view of the activity statistics is frozen).
    pub async fn lock_waiters(&self) -> i64 {
        self.db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("activity")
            .get(0)
    }

    /// The event store as the command API opens it (personal data decrypted).
    pub fn store(&self) -> eventstore::EventStore {
        eventstore::EventStore::new(
            infra::db::pool(&self.database_url, 2).expect("pool"),
            std::sync::Arc::new(infra::crypto::KeyRing::new(
                MasterKey::from_base64(self.settings.master_key.as_ref().expect("key").expose())
                    .expect("key"),
            )),
        )
    }

    /// Renames `user_id` by appending `user.profile_updated` through the store itself, as a
    /// writer other than the API would (recorded at `occurred_at`); committed when it is
    /// accepted, rolled back when refused.
    pub async fn append_rename(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        name: &str,
        occurred_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), eventstore::StoreError> {
        let store = self.store();
        let version = self.stream_types(user_id).await.len() as i64;
        let unit = store.begin().await.expect("begin");
        let appended = unit
            .append(
                eventstore::Changes::of_events(
                    tenant_id,
                    occurred_at,
                    &[eventstore::ExpectedVersion {
                        aggregate_id: user_id,
                        version,
                    }],
                    vec![domain::DomainEvent::User {
                        user_id,
                        event: domain::UserEvent::profile_updated(
                            user_id,
                            Some(name.into()),
                            None,
                            None,
                            user_id,
                        )
                        .expect("a change"),
                    }],
                ),
                &eventstore::EventMetadata {
                    source: "test".into(),
                    ..Default::default()
                },
            )
            .await;
        match appended {
            Ok(_) => unit.commit().await,
            Err(error) => {
                unit.rollback().await;
                Err(error)
            }
        }
    }

    /// One stream's events in order, personal fields decrypted.
    pub async fn decrypted_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: Uuid,
    ) -> Vec<eventstore::RecordedEvent> {
        self.store()
            .load_stream(aggregate_type, aggregate_id)
            .await
            .expect("load a stream")
    }

    /// Access tokens signed with this app's key, with `access_ttl` (negative: expired).
    pub async fn tokens(&self, access_ttl: chrono::Duration) -> infra::tokens::Tokens {
        self.tokens_signed_by(self.signing_key(), access_ttl).await
    }

    /// The key this app's command API signs with.
    pub fn signing_key(&self) -> infra::tokens::SigningKey {
        infra::tokens::SigningKey::parse(
            self.settings
                .signing_key
                .as_ref()
                .expect("the test key")
                .expose(),
        )
        .expect("the test key")
    }

    /// Access tokens signed with `key`, registered in this app's database like a command API
    /// instance started with it.
    pub async fn tokens_signed_by(
        &self,
        key: infra::tokens::SigningKey,
        access_ttl: chrono::Duration,
    ) -> infra::tokens::Tokens {
        let pool = infra::db::pool(self.settings.database_url.expose(), 2).expect("a pool");
        let signer = infra::tokens::Signer::register(
            pool.clone(),
            key,
            access_ttl.max(chrono::Duration::zero()),
            infra::tokens::HEARTBEAT,
        )
        .await
        .expect("register the key");
        let keys = infra::tokens::KeySet::load(pool)
            .await
            .expect("the key set");
        infra::tokens::Tokens::issuing(signer, keys, access_ttl, chrono::Duration::hours(1))
    }

    /// A correctly signed access token that expired a minute ago.
    pub async fn expired_token(
        &self,
        user_id: Uuid,
        tenant_id: Uuid,
        role: domain::Role,
    ) -> String {
        self.tokens(chrono::Duration::seconds(-60))
            .await
            .issue_access_token(user_id, tenant_id, Uuid::new_v4(), role, chrono::Utc::now())
            .expect("a token")
    }

    /// The Prometheus text an API at `base` serves on `/metrics`.
    pub async fn metrics(&self, base: &str) -> String {
        self.http
            .get(format!("{base}/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// The whole events table as text, as an operator would see it with psql.
    pub async fn events_table_text(&self) -> String {
        self.db
            .query("SELECT e::text FROM events e ORDER BY position", &[])
            .await
            .expect("dump events")
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The asynchronous side of one test: its own JetStream stream and subject prefix over the
/// test's database.
pub struct Pipeline {
    pub app: TestApp,
    pub settings: projector::settings::Settings,
    pub js: async_nats::jetstream::Context,
    pub keys: std::sync::Arc<infra::crypto::KeyRing>,
    pub pool: deadpool_postgres::Pool,
    finished: bool,
}

impl Drop for Pipeline {
    /// A test that failed before [`Pipeline::finish`] still removes its stream: from a thread
    /// of its own, since the test's runtime may be unwinding.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (url, name) = (
            self.settings.nats_url.clone(),
            self.settings.stream.name.clone(),
        );
        let removal = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let removal = async {
                    if let Ok(client) = async_nats::connect(url.expose()).await {
                        let _ = async_nats::jetstream::new(client)
                            .delete_stream(&name)
                            .await;
                    }
                };
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), removal).await;
            });
        });
        let _ = removal.join();
    }
}

impl Pipeline {
    pub async fn start() -> Pipeline {
        Self::start_with_nats(None).await
    }

    /// A pipeline whose emails go to a test SMTP server, with links built from
    /// `https://people.example`.
    pub async fn start_with_mail() -> (Pipeline, smtp::SmtpServer) {
        let smtp = smtp::SmtpServer::start().await;
        let mut pipeline = Self::start().await;
        pipeline.settings.smtp_url = Some(smtp.url().into());
        pipeline.settings.email_worker.public_url = "https://people.example".into();
        (pipeline, smtp)
    }

    /// Like [`Pipeline::start`], against the NATS server at `nats_url` when given.
    pub async fn start_with_nats(nats_url: Option<String>) -> Pipeline {
        Self::start_with(nats_url, |_| {}).await
    }

    /// Like [`Pipeline::start_with_nats`], with the command API's settings customised.
    pub async fn start_with(
        nats_url: Option<String>,
        customise: impl FnOnce(&mut Settings),
    ) -> Pipeline {
        infra::telemetry::init(false);
        let app = TestApp::spawn_with(customise).await;
        let unique = Uuid::new_v4().simple().to_string();
        let master_key = app
            .settings
            .master_key
            .as_ref()
            .expect("test key")
            .expose()
            .clone();
        let settings = projector::settings::Settings {
            database_url: app.database_url.clone().into(),
            database_pool_size: 4,
            nats_url: nats_url
                .unwrap_or_else(|| {
                    std::env::var("TEST_NATS_URL")
                        .unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
                })
                .into(),
            stream: projector::settings::StreamSettings {
                name: format!("TEST_{unique}"),
                subject_prefix: format!("t{unique}"),
                replicas: 1,
                max_deliver: 5,
            },
            data_dir: app.settings.data_dir.clone(),
            master_key: Some(Secret::new(master_key.clone())),
            batch_size: 64,
            relay_poll_interval: std::time::Duration::from_millis(200),
            timer_poll_interval: std::time::Duration::from_millis(200),
            timer_lease: std::time::Duration::from_secs(2),
            password_reset_ttl: chrono::Duration::minutes(30),
            import_workers: 1,
            import_batch_rows: 50,
            import_lease: std::time::Duration::from_secs(1),
            import_poll_interval: std::time::Duration::from_millis(100),
            import_max_failures: 2,
            http_addr: "127.0.0.1:0".parse().expect("address"),
            metrics_access: api_common::operations::MetricsAccess::token(METRICS_TOKEN)
                .expect("a long enough token"),
            search_dir: app.settings.data_dir.join("search"),
            log_json: false,
            email_policy: projector::email::projection::EmailPolicy::default(),
            email_worker: projector::email::worker::WorkerSettings {
                workers: 1,
                poll_interval: std::time::Duration::from_millis(50),
                retry_base: std::time::Duration::from_millis(200),
                retry_max: std::time::Duration::from_secs(2),
                ..Default::default()
            },
            smtp_url: None,
            smtp_timeout: std::time::Duration::from_secs(5),
            smtp_ca_file: None,
            mail_file_retention: std::time::Duration::from_secs(7 * 24 * 3600),
            webhooks: projector::webhooks::worker::WebhookSettings {
                workers: 1,
                poll_interval: std::time::Duration::from_millis(50),
                timeout: std::time::Duration::from_secs(2),
                retry_base: std::time::Duration::from_millis(200),
                retry_max: std::time::Duration::from_secs(2),
                targets: infra::webhooks::TargetPolicy::parse("127.0.0.0/8, ::1")
                    .expect("a policy"),
                public_api_url: "https://api.example".into(),
                ..Default::default()
            },
        };
        let js = projector::stream::connect(&settings.nats_url)
            .await
            .expect("NATS");
        let keys = std::sync::Arc::new(infra::crypto::KeyRing::new(
            MasterKey::from_base64(&master_key).expect("key"),
        ));
        let pool = infra::db::pool(&app.database_url, 4).expect("pool");
        Pipeline {
            app,
            settings,
            js,
            keys,
            pool,
            finished: false,
        }
    }

    pub fn relay(&self) -> projector::relay::Relay {
        projector::relay::Relay {
            database_url: self.settings.database_url.expose().to_owned(),
            keys: std::sync::Arc::clone(&self.keys),
            js: self.js.clone(),
            stream: self.settings.stream.clone(),
            poll_interval: self.settings.relay_poll_interval,
        }
    }

    /// Publishes everything committed so far; returns how many events were published.
    pub async fn relay_all(&self) -> usize {
        let relay = self.relay();
        let mut total = 0;
        loop {
            let published = relay.publish_available(&self.app.db).await.expect("relay");
            if published == 0 {
                return total;
            }
            total += published;
        }
    }

    /// Publishes until `expected` events went out (other tests' open transactions hold the
    /// server-wide visibility horizon back while they last), or [`WAIT_LIMIT`] passed.
    pub async fn relay_until(&self, expected: usize) -> usize {
        let mut total = 0;
        let started = std::time::Instant::now();
        while started.elapsed() < WAIT_LIMIT {
            total += self.relay_all().await;
            if total >= expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        total
    }

    /// Waits until the stream holds `expected` messages.
    pub async fn wait_for_stream(&self, expected: u64) -> u64 {
        let mut messages = 0;
        let started = std::time::Instant::now();
        while started.elapsed() < WAIT_LIMIT {
            messages = self.stream_messages().await;
            if messages >= expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        messages
    }

    /// Every consumer of the stream (one per projection group a projector runs).
    pub async fn consumers(&self) -> Vec<async_nats::jetstream::consumer::PullConsumer> {
        use futures_util::StreamExt as _;
        let Ok(stream) = self.js.get_stream(&self.settings.stream.name).await else {
            return Vec::new();
        };
        let names: Vec<String> = stream
            .consumer_names()
            .filter_map(|name| async move { name.ok() })
            .collect()
            .await;
        let mut consumers = Vec::new();
        for name in names {
            if let Ok(consumer) = stream.get_consumer(&name).await {
                consumers.push(consumer);
            }
        }
        consumers
    }

    /// Runs the whole projector (relay and all projections) in the background.
    pub fn spawn_projector(&self) -> RunningProjector {
        self.spawn_projector_of(projector::projections::Projection::EVERY.to_vec())
    }

    /// Runs the relay and the given projections in the background.
    pub fn spawn_projector_of(
        &self,
        projections: Vec<projector::projections::Projection>,
    ) -> RunningProjector {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let settings = self.settings.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let handle = tokio::spawn(async move {
            projector::app::run(settings, projections, shutdown, Some(listener))
                .await
                .expect("projector");
        });
        RunningProjector {
            stop,
            handle,
            address,
        }
    }

    /// Waits until every projection has applied every committed event.
    pub async fn wait_for_projections(&self) {
        self.wait_for_projections_of(&projector::projections::Projection::EVERY)
            .await;
    }

    /// Waits until each of `projections` has applied every committed event.
    pub async fn wait_for_projections_of(
        &self,
        projections: &[projector::projections::Projection],
    ) {
        let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
        let head: i64 = self
            .app
            .db
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .expect("count")
            .get(0);
        let started = std::time::Instant::now();
        while started.elapsed() < WAIT_LIMIT {
            let client = self.pool.get().await.expect("connection");
            let status = read_models::projections::status(&client)
                .await
                .expect("status");
            if status
                .projections
                .iter()
                .filter(|p| names.contains(&p.name.as_str()))
                .all(|p| p.lag_events == 0 && p.position > 0)
                && status.events == head
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let client = self.pool.get().await.expect("connection");
        let mut consumers = Vec::new();
        for mut consumer in self.consumers().await {
            consumers.push(format!(
                "{:?}",
                consumer.info().await.map(|i| (
                    i.name.clone(),
                    i.num_pending,
                    i.num_ack_pending,
                    i.delivered,
                    i.ack_floor,
                    i.created
                ))
            ));
        }
        panic!(
            "projections did not catch up: {:?}\nstream messages: {}\nconsumers: {consumers:#?}",
            read_models::projections::status(&client).await,
            self.stream_messages().await
        );
    }

    /// Checks that the search index in `search_dir` holds exactly what the event store says
    /// of `tenant_id`: every present user once (found by their latest name), no erased one,
    /// and one audit document per event.
    pub async fn assert_search_index_equals_the_store(
        &self,
        search_dir: &std::path::Path,
        tenant_id: Uuid,
    ) {
        let mut names: std::collections::BTreeMap<Uuid, String> = Default::default();
        let mut events_of_tenant = 0;
        for event in self.app.store().load_all(0, 1_000_000).await.expect("load") {
            if event.tenant_id != tenant_id {
                continue;
            }
            events_of_tenant += 1;
            let name = event.data["display_name"].as_str().map(str::to_owned);
            match (event.event_type.as_str(), name) {
                ("user.created", Some(name)) => {
                    names.insert(event.aggregate_id, name);
                }
                ("user.profile_updated", Some(name)) => {
                    names.insert(event.aggregate_id, name);
                }
                ("user.deleted", _) => {
                    names.remove(&event.aggregate_id);
                }
                _ => {}
            }
        }
        let generation = read_models::search::current_generation(search_dir);
        let (index, fields) =
            read_models::search::open(&read_models::search::generation_dir(search_dir, generation))
                .expect("open the index");
        let reader = index.reader().expect("a reader");
        let everyone = read_models::search::search_users(
            &reader,
            &fields,
            &read_models::search::UserSearch {
                tenant_id,
                limit: 100_000,
                ..Default::default()
            },
        )
        .expect("search");
        let mut indexed: Vec<Uuid> = everyone.iter().map(|(_, id)| *id).collect();
        let listed = indexed.len();
        indexed.sort();
        indexed.dedup();
        assert_eq!(indexed.len(), listed, "a user is in the index twice");
        assert_eq!(
            indexed,
            names.keys().copied().collect::<Vec<_>>(),
            "the index's users differ from the store's"
        );
        for (user_id, name) in &names {
            let found = read_models::search::search_users(
                &reader,
                &fields,
                &read_models::search::UserSearch {
                    tenant_id,
                    q: Some(name.clone()),
                    limit: 100_000,
                    ..Default::default()
                },
            )
            .expect("search");
            assert!(
                found.iter().any(|(_, id)| id == user_id),
                "{user_id} is not found by their latest name {name:?}"
            );
        }
        let audit = read_models::search::search_audit(
            &reader,
            &fields,
            &read_models::search::AuditSearch {
                tenant_id,
                limit: 1_000_000,
                ..Default::default()
            },
        )
        .expect("audit search");
        let mut positions: Vec<i64> = audit.iter().map(|(position, _)| *position).collect();
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(
            positions.len(),
            audit.len(),
            "an event is in the index twice"
        );
        assert_eq!(
            audit.len(),
            events_of_tenant,
            "audit documents differ from the events"
        );
    }

    /// Publishes bytes that are no event envelope on the stream, as for `tenant_id`'s
    /// `user.created` (what a broken or hostile publisher might send).
    pub async fn publish_garbage(&self, tenant_id: Uuid, bytes: &'static str) {
        self.js
            .publish(
                self.settings.stream.subject_for(tenant_id, "user.created"),
                bytes.into(),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    /// Messages in the stream (0 while it does not exist).
    pub async fn stream_messages(&self) -> u64 {
        match self.js.get_stream(&self.settings.stream.name).await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Applied-event counters of every projection.
    pub async fn applied(&self) -> Vec<(String, i64)> {
        self.app
            .db
            .query(
                "SELECT projection, events_applied FROM projection_checkpoints ORDER BY projection",
                &[],
            )
            .await
            .expect("checkpoints")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// Rebuilds `projections` from the event store and checks that the rows are the ones
    /// they were: what the live side built is what the store says.
    pub async fn assert_rows_equal_a_rebuild_of(
        &self,
        projections: &[projector::projections::Projection],
        why: &str,
    ) {
        let live = self.read_models_text().await;
        for projection in projections {
            projector::replay::replay(&self.pool, &self.keys, *projection, None, false)
                .await
                .expect("replay");
        }
        assert_eq!(self.read_models_text().await, live, "{why}");
    }

    /// Every read model as text, for comparing two builds.
    pub async fn read_models_text(&self) -> String {
        let mut text = String::new();
        let tables = projector::projections::Projection::ALL
            .iter()
            .flat_map(|projection| projection.tables());
        for table in tables {
            let rows = self
                .app
                .db
                .query(
                    &format!("SELECT t::text FROM {table} t ORDER BY t::text"),
                    &[],
                )
                .await
                .expect("dump");
            for row in rows {
                text.push_str(&row.get::<_, String>(0));
                text.push('\n');
            }
        }
        text
    }

    pub async fn finish(mut self) {
        let _ = self.js.delete_stream(&self.settings.stream.name).await;
        self.finished = true;
    }
}

pub struct RunningProjector {
    stop: tokio::sync::watch::Sender<bool>,
    pub handle: tokio::task::JoinHandle<()>,
    /// The projector's HTTP port (`/health`, `/ready`, `/metrics`).
    pub address: String,
}

impl RunningProjector {
    /// Graceful stop: the batch in hand is finished.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }

    /// A crash: the task is dropped wherever it is.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// The workspace's root folder (the tests crate sits in it).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Every Rust source file below `dir`, with its text.
pub fn rust_sources(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut sources = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)
            .expect("a source folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                sources.push((path, text));
            }
        }
    }
    sources.sort();
    sources
}
