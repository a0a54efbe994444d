//! `/health`, `/ready` and `/metrics`, answered the same way by every service.
//!
//! A service says what it depends on by implementing [`Probe`]; this module times each check
//! (two seconds at most), answers 200 with every check or 503 problem+json naming what is
//! down, and renders the process's Prometheus metrics to operators: `/metrics` names tenants,
//! so it answers only a scraper that shows `METRICS_TOKEN` ([`MetricsAccess`]).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::docs::Problem;

/// How long one readiness check may take before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a service depends on, for `/ready`, and what it records before `/metrics` renders.
pub trait Probe: Send + Sync + 'static {
    /// Runs the service's checks.
    fn checks(&self) -> Pin<Box<dyn Future<Output = Checks> + '_>>;

    /// Refreshes gauges that are read, not counted (a connection pool's use).
    fn before_metrics(&self) {}
}

/// The checks of one `/ready` answer, by name.
#[derive(Debug, Default)]
pub struct Checks {
    checks: Map<String, Value>,
    up: bool,
}

impl Checks {
    pub fn new() -> Self {
        Checks {
            checks: Map::new(),
            up: true,
        }
    }

    /// Runs one check within [`CHECK_TIMEOUT`] and records it with its latency; what the
    /// check returns on success joins its entry (e.g. the search index's position).
    pub async fn check<F>(&mut self, name: &str, probe: F) -> &mut Self
    where
        F: Future<Output = Result<Map<String, Value>, String>>,
    {
        let started = Instant::now();
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {}s", CHECK_TIMEOUT.as_secs())));
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut entry = Map::new();
        match outcome {
            Ok(details) => {
                entry.insert("status".into(), "up".into());
                entry.insert("latency_ms".into(), latency_ms.into());
                entry.extend(details);
            }
            Err(error) => {
                tracing::warn!(check = name, %error, "a dependency is not ready");
                self.up = false;
                entry.insert("status".into(), "down".into());
                entry.insert("latency_ms".into(), latency_ms.into());
                entry.insert("error".into(), error.into());
            }
        }
        self.checks.insert(name.into(), Value::Object(entry));
        self
    }

    /// Adds a field to a check's entry whatever its outcome (e.g. which server it asked).
    pub fn note(&mut self, name: &str, field: &str, value: impl Into<Value>) -> &mut Self {
        if let Some(Value::Object(entry)) = self.checks.get_mut(name) {
            entry.insert(field.into(), value.into());
        }
        self
    }

    /// A `SELECT 1` on a connection from the pool.
    pub async fn postgres(&mut self, pool: &deadpool_postgres::Pool) -> &mut Self {
        self.check("postgres", async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            Ok(Map::new())
        })
        .await
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// 200 with every check, or 503 problem+json naming the checks that are down.
    pub fn answer(self) -> HttpResponse {
        let Checks { checks, up } = self;
        if up {
            return HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}));
        }
        let down: Vec<&str> = checks
            .iter()
            .filter(|(_, check)| check["status"] != "up")
            .map(|(name, _)| name.as_str())
            .collect();
        let detail = format!("not ready: {} down", down.join(", "));
        let mut body = crate::error::problem(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            &detail,
        );
        body["checks"] = Value::Object(checks);
        HttpResponse::ServiceUnavailable()
            .content_type(crate::error::PROBLEM_CONTENT_TYPE)
            .insert_header((actix_web::http::header::RETRY_AFTER, "5"))
            .json(body)
    }
}

/// Registers `/health`, `/ready` and `/metrics`; the service's [`Probe`] must be in the
/// app data as `web::Data<dyn Probe>`.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/ready").route(web::get().to(ready)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses(
    (status = 200, description = "the process answers", body = Health)
))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: each dependency with its status and latency; 503 when one is down.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "every dependency is up", body = serde_json::Value),
    (status = 503, description = "a dependency is down: a problem naming it, with every check in `checks`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn ready(probe: web::Data<dyn Probe>) -> HttpResponse {
    probe.checks().await.answer()
}

/// Who may read `/metrics`, whose series carry tenant ids.
#[derive(Debug, Clone)]
pub enum MetricsAccess {
    /// A scraper that sends `Authorization: Bearer <METRICS_TOKEN>`; compared as SHA-256
    /// digests, so the comparison's time says nothing about the token.
    Token(infra::Secret<[u8; 32]>),
    /// Anyone: only on a development machine (`EVENTRA_DEV=1`) without a token.
    Open,
    /// No one (404): no token is configured outside development.
    Closed,
}

impl MetricsAccess {
    /// The shortest token accepted: 16 bytes.
    pub const MIN_TOKEN_BYTES: usize = 16;

    /// `METRICS_TOKEN` (at least 16 bytes), else open with `EVENTRA_DEV=1`, else closed.
    pub fn from_env() -> anyhow::Result<Self> {
        match infra::config::var("METRICS_TOKEN") {
            Some(token) => Self::token(token.trim()),
            None if infra::config::dev_mode() => Ok(MetricsAccess::Open),
            None => Ok(MetricsAccess::Closed),
        }
    }

    pub fn token(token: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            token.len() >= Self::MIN_TOKEN_BYTES,
            "METRICS_TOKEN must be at least {} bytes (`openssl rand -hex 24`)",
            Self::MIN_TOKEN_BYTES
        );
        Ok(MetricsAccess::Token(infra::Secret::new(digest(token))))
    }

    /// The refusal of a request that may not read the metrics; `None` lets it read them.
    fn refusal(&self, request: &HttpRequest) -> Option<HttpResponse> {
        let expected = match self {
            MetricsAccess::Open => return None,
            MetricsAccess::Closed => {
                return Some(refuse(
                    actix_web::http::StatusCode::NOT_FOUND,
                    "not-found",
                    "metrics are not served here: set METRICS_TOKEN and scrape with it",
                ));
            }
            MetricsAccess::Token(expected) => expected,
        };
        let presented = crate::extract::bearer(request).map(|token| digest(&token));
        if presented.as_ref() == Some(expected.expose()) {
            return None;
        }
        let mut answer = refuse(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "metrics need the operators' token: Authorization: Bearer <METRICS_TOKEN>",
        );
        answer.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            actix_web::http::header::HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        Some(answer)
    }
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn refuse(status: actix_web::http::StatusCode, kind: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(crate::error::PROBLEM_CONTENT_TYPE)
        .json(crate::error::problem(status, kind, detail))
}

/// `GET /metrics`: Prometheus text (requests by route, method, status and tenant, latency
/// histograms, events appended, rate-limit rejections and usage, connection pool), for the
/// holder of `METRICS_TOKEN`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security(("metrics_token" = [])),
    responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
    (status = 401, description = "no or the wrong `METRICS_TOKEN` as bearer token", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no `METRICS_TOKEN` is configured (and this is not a development machine)", body = Problem, content_type = "application/problem+json"),
))]
pub async fn metrics(
    probe: web::Data<dyn Probe>,
    access: Option<web::Data<MetricsAccess>>,
    request: HttpRequest,
) -> HttpResponse {
    let access = access.map_or(MetricsAccess::Closed, |access| access.get_ref().clone());
    if let Some(answer) = access.refusal(&request) {
        return answer;
    }
    probe.before_metrics();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(infra::metrics::render())
}

/// The probe of a service whose one dependency is PostgreSQL (the command API).
pub struct DatabaseProbe {
    pub service: &'static str,
    pub pool: deadpool_postgres::Pool,
}

impl Probe for DatabaseProbe {
    fn checks(&self) -> Pin<Box<dyn Future<Output = Checks> + '_>> {
        Box::pin(async move {
            let mut checks = Checks::new();
            checks.postgres(&self.pool).await;
            checks
        })
    }

    fn before_metrics(&self) {
        infra::metrics::record_pool(self.service, &self.pool);
    }
}

/// Puts a probe in an app's data, where [`ready`] and [`metrics`] find it.
pub fn probe_data(probe: impl Probe) -> web::Data<dyn Probe> {
    let probe: std::sync::Arc<dyn Probe> = std::sync::Arc::new(probe);
    web::Data::from(probe)
}
