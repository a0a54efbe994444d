//! What both APIs do around every request: authenticate once, apply the per-tenant rate
//! limit (per client IP for requests without a valid token), and record request metrics.
//!
//! Limits are per hour, counted in a window that opens with a key's first request and
//! lasts an hour (`X-RateLimit-Reset` says when it ends). With one instance the counters
//! live in memory; with `REDIS_URL` they live in Redis (one Lua script: increment, set the
//! window's expiry on the first request, return the count and the time left), so every
//! instance spends one shared budget.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse, web};
use deadpool_postgres::Pool;
use infra::config::{parse, var};
use uuid::Uuid;

use crate::error::{PROBLEM_CONTENT_TYPE, problem};
use crate::extract::{Authenticated, Authenticator, authenticate_token, bearer};

mod counters;

use counters::Counters;
pub use counters::Decision;

/// Rate limits and metric labels, from the environment.
#[derive(Debug, Clone)]
pub struct TrafficSettings {
    /// `RATE_LIMIT_STANDARD_PER_HOUR`, default 1000: requests per hour of a tenant on the
    /// standard plan.
    pub standard_per_hour: u32,
    /// `RATE_LIMIT_PREMIUM_PER_HOUR`, default 5000.
    pub premium_per_hour: u32,
    /// `RATE_LIMIT_ANONYMOUS_PER_HOUR`, default 300: requests per hour per client IP
    /// without a valid token (signup, login, refresh), so password guessing is throttled.
    pub anonymous_per_hour: u32,
    /// `RATE_LIMIT_MEMBER_SHARE_PERCENT`, default 25: the share of its tenant's hourly
    /// budget one member may spend (admins spend the tenant's), so that no member — nor a
    /// stranger who signed up into an open tenant — can use up the tenant's budget alone.
    pub member_share_percent: u32,
    /// `TRUSTED_PROXIES`: addresses or networks (`10.0.0.0/8, fd00::/8`) whose
    /// `Forwarded` / `X-Forwarded-For` name the client; from any other peer those headers
    /// are ignored.
    pub trusted_proxies: crate::client_address::TrustedProxies,
    /// `REDIS_URL`: share the counters between instances.
    pub redis_url: Option<infra::ConnectionUrl>,
    /// `RATE_LIMIT_KEY_PREFIX`, default `eventra:ratelimit`: the Redis keys' prefix.
    pub key_prefix: String,
    /// `RATE_LIMIT_CACHE_SECS`, default 10: how long a tenant's limit (plan or override) is
    /// cached before it is read again.
    pub limit_cache: Duration,
    /// `METRICS_MAX_TENANT_LABELS`, default 100: tenants that get their own metric label;
    /// later ones share `other`, which bounds the series count.
    pub max_tenant_labels: usize,
    /// `METRICS_TOKEN`: who may read `/metrics` (see [`crate::operations::MetricsAccess`]).
    pub metrics_access: crate::operations::MetricsAccess,
    /// `RATE_LIMIT_REFRESH_PER_SESSION_PER_HOUR`, default 120: refreshes of one session an
    /// hour. A refresh is counted against its session, not its client's address (many
    /// users behind one address refresh independently); one that fails (an unknown session
    /// or a wrong secret) is counted against the address.
    pub refresh_per_session_per_hour: u32,
}

impl TrafficSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(TrafficSettings {
            standard_per_hour: parse("RATE_LIMIT_STANDARD_PER_HOUR", "1000")?,
            premium_per_hour: parse("RATE_LIMIT_PREMIUM_PER_HOUR", "5000")?,
            anonymous_per_hour: parse("RATE_LIMIT_ANONYMOUS_PER_HOUR", "300")?,
            member_share_percent: parse::<u32>("RATE_LIMIT_MEMBER_SHARE_PERCENT", "25")?
                .clamp(1, 100),
            trusted_proxies: crate::client_address::TrustedProxies::parse(
                &var("TRUSTED_PROXIES").unwrap_or_default(),
            )?,
            redis_url: var("REDIS_URL").map(infra::ConnectionUrl::from),
            key_prefix: var("RATE_LIMIT_KEY_PREFIX").unwrap_or_else(|| "eventra:ratelimit".into()),
            limit_cache: Duration::from_secs(parse("RATE_LIMIT_CACHE_SECS", "10")?),
            max_tenant_labels: parse("METRICS_MAX_TENANT_LABELS", "100")?,
            metrics_access: crate::operations::MetricsAccess::from_env()?,
            refresh_per_session_per_hour: parse("RATE_LIMIT_REFRESH_PER_SESSION_PER_HOUR", "120")?,
        })
    }
}

pub struct Traffic {
    service: &'static str,
    settings: TrafficSettings,
    pool: Pool,
    counters: Counters,
    limits: Mutex<HashMap<Uuid, (u32, Instant)>>,
    labels: Mutex<HashSet<Uuid>>,
}

impl Traffic {
    /// Connects to Redis when `REDIS_URL` is set (and fails if it cannot).
    pub async fn new(
        service: &'static str,
        settings: TrafficSettings,
        pool: Pool,
    ) -> anyhow::Result<Self> {
        let _ = infra::metrics::recorder();
        let counters = Counters::connect(settings.redis_url.as_ref()).await?;
        Ok(Traffic {
            service,
            settings,
            pool,
            counters,
            limits: Mutex::default(),
            labels: Mutex::default(),
        })
    }

    /// Counts one request against `key`'s hourly budget of `limit`.
    pub async fn count(&self, key: &str, limit: u32) -> Decision {
        self.spend(key, limit, 1).await
    }

    /// What `key` has spent of `limit` this hour, without spending.
    pub async fn peek(&self, key: &str, limit: u32) -> Decision {
        self.spend(key, limit, 0).await
    }

    async fn spend(&self, key: &str, limit: u32, amount: u64) -> Decision {
        self.counters
            .spend(
                key,
                limit,
                amount,
                self.settings.anonymous_per_hour,
                &self.settings.key_prefix,
                self.service,
            )
            .await
    }

    /// The anonymous budget's key of the client that sent `request` (its address, IPv6 by
    /// /64, named by a trusted proxy where one forwarded it).
    pub fn client_key(&self, request: &actix_web::HttpRequest) -> String {
        crate::client_address::limit_key(
            self.settings
                .trusted_proxies
                .client(request.peer_addr().map(|a| a.ip()), request.headers()),
        )
    }

    pub fn settings(&self) -> &TrafficSettings {
        &self.settings
    }

    /// The tenant's hourly limit: a platform admin's override, or its plan's.
    async fn tenant_limit(&self, tenant_id: Uuid) -> u32 {
        let cached = self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&tenant_id)
            .filter(|(_, at)| at.elapsed() < self.settings.limit_cache)
            .map(|(limit, _)| *limit);
        if let Some(limit) = cached {
            return limit;
        }
        let limit = match self.read_limit(tenant_id).await {
            Ok(limit) => limit,
            Err(error) => {
                tracing::warn!(%tenant_id, error = format!("{error:#}"), "reading the tenant's limit failed; using the standard plan's");
                return self.settings.standard_per_hour;
            }
        };
        self.limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tenant_id, (limit, Instant::now()));
        limit
    }

    async fn read_limit(&self, tenant_id: Uuid) -> anyhow::Result<u32> {
        let client = self.pool.get().await?;
        let tenant: domain::Tenant = eventstore::fold_stream(&client, tenant_id).await?;
        Ok(match tenant.rate_limit_per_hour {
            Some(limit) => limit,
            None if tenant.plan == domain::Plan::Premium => self.settings.premium_per_hour,
            None => self.settings.standard_per_hour,
        })
    }

    /// The tenant's metric label: its id for the first `max_tenant_labels` tenants seen,
    /// `other` after that.
    fn label(&self, tenant_id: Uuid) -> String {
        let mut labels = self
            .labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if labels.contains(&tenant_id) || labels.len() < self.settings.max_tenant_labels {
            labels.insert(tenant_id);
            tenant_id.to_string()
        } else {
            "other".to_owned()
        }
    }
}

/// Paths no limit applies to: probes, metrics, the API documents (OpenAPI, the event
/// schemas) and the token keys, all answered from memory.
pub fn exempt(path: &str) -> bool {
    matches!(
        path,
        "/health"
            | "/ready"
            | "/metrics"
            | "/openapi.json"
            | "/asyncapi.json"
            | "/.well-known/jwks.json"
    ) || path.starts_with("/docs")
        || path.starts_with("/v1/schemas/")
}

/// The one anonymous route its handler counts itself: a refresh against its session, and
/// against the client's address only when it fails.
pub const REFRESH_PATH: &str = "/v1/sessions/refresh";

/// Who a request is counted against.
enum Subject {
    /// A tenant's user: against the tenant's budget, and a member also against their share.
    Tenant(infra::auth::Principal),
    Address(Option<IpAddr>),
    Exempt,
}

/// The middleware: `App::wrap(from_fn(traffic))` with a `web::Data<Traffic>` registered.
pub async fn traffic(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let started = Instant::now();
    let Some(traffic) = request.app_data::<web::Data<Traffic>>().cloned() else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    let method = request.method().as_str().to_owned();
    let subject = if exempt(request.path()) {
        Subject::Exempt
    } else {
        let principal = match (
            bearer(request.request()),
            request.app_data::<web::Data<Authenticator>>(),
        ) {
            (Some(token), Some(authenticator)) => {
                authenticate_token(authenticator, &token).await.ok()
            }
            _ => None,
        };
        match principal {
            Some(principal) => {
                request.extensions_mut().insert(Authenticated(principal));
                if principal.platform_admin {
                    Subject::Exempt
                } else {
                    Subject::Tenant(principal)
                }
            }
            None if request.path() == REFRESH_PATH => Subject::Exempt,
            None => Subject::Address(
                traffic
                    .settings
                    .trusted_proxies
                    .client(request.peer_addr().map(|a| a.ip()), request.headers()),
            ),
        }
    };
    let (decision, tenant) = match subject {
        Subject::Exempt => (None, "none".to_owned()),
        Subject::Tenant(principal) => {
            let tenant_id = principal.tenant_id;
            let limit = traffic.tenant_limit(tenant_id).await;
            let label = traffic.label(tenant_id);
            // A member over their share is refused before the tenant's budget is touched.
            let share = (principal.role == domain::Role::Member).then(|| {
                u32::try_from(
                    u64::from(limit) * u64::from(traffic.settings.member_share_percent) / 100,
                )
                .unwrap_or(u32::MAX)
                .max(1)
            });
            let own = match share {
                Some(share) => Some(
                    traffic
                        .count(&format!("member:{}", principal.user_id), share)
                        .await,
                ),
                None => None,
            };
            let decision = match own {
                Some(own) if !own.allowed() => own,
                _ => {
                    let decision = traffic.count(&format!("tenant:{tenant_id}"), limit).await;
                    metrics::gauge!("eventra_rate_limit_usage_ratio", "service" => traffic.service, "tenant" => label.clone())
                        .set(decision.count as f64 / f64::from(limit.max(1)));
                    // The tighter of the two is what the client sees.
                    match own {
                        Some(own) if own.remaining() < decision.remaining() => Decision {
                            count: own.count,
                            limit: own.limit,
                            reset: own.reset,
                        },
                        _ => decision,
                    }
                }
            };
            (Some(decision), label)
        }
        Subject::Address(client) => {
            let decision = traffic
                .count(
                    &crate::client_address::limit_key(client),
                    traffic.settings.anonymous_per_hour,
                )
                .await;
            (Some(decision), "anonymous".to_owned())
        }
    };
    if let Some(decision) = decision.filter(|d| !d.allowed()) {
        metrics::counter!("eventra_rate_limit_rejections_total", "service" => traffic.service, "tenant" => tenant.clone())
            .increment(1);
        tracing::info!(tenant = %tenant, limit = decision.limit, reset = decision.reset, "request over the rate limit");
        let mut response = HttpResponse::build(StatusCode::TOO_MANY_REQUESTS);
        response
            .content_type(PROBLEM_CONTENT_TYPE)
            .insert_header((RETRY_AFTER, decision.reset.to_string()));
        let mut response = response.json(problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            &format!(
                "the limit of {} requests an hour is reached; retry in {} s",
                decision.limit, decision.reset
            ),
        ));
        limit_headers(response.headers_mut(), &decision);
        let response = request.into_response(response);
        record(&traffic, &response, &method, &tenant, started);
        return Ok(response.map_into_right_body());
    }
    let mut response = next.call(request).await?;
    if let Some(decision) = &decision {
        limit_headers(response.headers_mut(), decision);
    }
    record(&traffic, &response, &method, &tenant, started);
    Ok(response.map_into_left_body())
}

fn limit_headers(headers: &mut actix_web::http::header::HeaderMap, decision: &Decision) {
    for (name, value) in [
        ("x-ratelimit-limit", u64::from(decision.limit)),
        ("x-ratelimit-remaining", decision.remaining()),
        ("x-ratelimit-reset", decision.reset),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Request count (by route, method, status and tenant) and latency (by route, method and
/// status). Routes are the matched patterns (`/v1/tenants/{tenant_id}/users`), so paths
/// never become labels.
fn record<B>(
    traffic: &Traffic,
    response: &ServiceResponse<B>,
    method: &str,
    tenant: &str,
    started: Instant,
) {
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = match method {
        "GET" | "POST" | "PATCH" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" => method.to_owned(),
        _ => "other".to_owned(),
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let code = response.status().as_u16();
    if tenant == "none" {
        tracing::debug!(status = code, method = %method, route = %route, latency_ms, "request finished");
    } else {
        tracing::info!(status = code, method = %method, route = %route, latency_ms, "request finished");
    }
    let status = code.to_string();
    metrics::counter!("eventra_http_requests_total",
        "service" => traffic.service, "route" => route.clone(), "method" => method.clone(),
        "status" => status.clone(), "tenant" => tenant.to_owned())
    .increment(1);
    metrics::histogram!("eventra_http_request_duration_seconds",
        "service" => traffic.service, "route" => route, "method" => method, "status" => status)
    .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_documents_are_never_limited() {
        for path in [
            "/health",
            "/ready",
            "/metrics",
            "/openapi.json",
            "/docs/",
            "/docs/index.html",
            "/v1/schemas/events",
            "/v1/schemas/events/user.created/1",
            "/asyncapi.json",
            "/.well-known/jwks.json",
        ] {
            assert!(exempt(path), "{path}");
        }
        for path in ["/v1/me", "/v1/tenants", "/healthz"] {
            assert!(!exempt(path), "{path}");
        }
    }
}
