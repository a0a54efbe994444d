//! The test harness: a command API on a free port over a fresh database per test.

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

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub database_url: String,
    pub db: tokio_postgres::Client,
    pub settings: Settings,
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

pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        database_url: database_url.to_owned(),
        database_pool_size: 10,
        data_dir: std::env::temp_dir().join(format!("eventra-test-{}", Uuid::new_v4().simple())),
        master_key: Some(Secret::new(MasterKey::generate().expect("rng").to_base64())),
        jwt_secret: Some(Secret::new(format!(
            "{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        ))),
        access_token_ttl_seconds: 900,
        refresh_token_ttl_seconds: 3600,
        password_params: PasswordParams::default(),
        max_body_bytes: 64 * 1024,
        command_retries: 5,
        log_json: false,
    }
}

/// A fresh, empty database on the test server; returns its URL.
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
        let db = connect(&database_url).await;
        TestApp {
            address,
            http: reqwest::Client::new(),
            database_url,
            db,
            settings,
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

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.request(Method::DELETE, path, token, None).await
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
