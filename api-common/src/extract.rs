//! Request extraction: strict JSON bodies, the authenticated caller, request metadata and
//! idempotency keys.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use domain::{Actor, Role};
use eventstore::EventMetadata;
use infra::auth::{AuthenticationError, Principal, authenticate};
use infra::tokens::TokenError;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpan, RootSpanBuilder};
use uuid::Uuid;

use crate::error::ApiError;

pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
const MAX_ID_LEN: usize = 128;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Parses a JSON body strictly: JSON content type, valid JSON, known fields only.
pub fn parse_json<T: DeserializeOwned>(request: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    let json_content = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !json_content {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|error| {
        let mut detail = format!("the request body is not valid: {error}");
        detail.truncate(300);
        ApiError::MalformedBody(detail)
    })
}

/// Parses a path segment as an id. A malformed id names nothing, so it is a 404.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::NotFound(format!("no such {what}")))
}

fn valid_id_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| value.to_owned())
}

/// Root span with the ids every log line should carry.
pub struct EventraRootSpan;

impl RootSpanBuilder for EventraRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let correlation_id = valid_id_header(request.headers(), CORRELATION_ID_HEADER)
            .or_else(|| {
                request
                    .extensions()
                    .get::<RequestId>()
                    .map(ToString::to_string)
            })
            .unwrap_or_default();
        // The fields `tracing_actix_web::root_span!` gives a request, but for `http.target`:
        // a query string can hold personal data (`?q=grace@acme.example`), so the request
        // log keeps the path only. (Recording the path over the macro's target afterwards
        // is not enough: a text log prints both values.)
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let method = request.method().as_str().to_owned();
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let connection = request.connection_info();
        let span = tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.flavor = ?request.version(),
            http.scheme = %connection.scheme(),
            http.host = %connection.host(),
            http.client_ip = %request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
            http.user_agent = %user_agent,
            http.target = %request.path(),
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            correlation_id = %correlation_id,
            tenant_id = tracing::field::Empty,
            user_id = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        );
        drop(connection);
        span
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The ids of the request, for event metadata and logs.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub correlation_id: String,
}

impl RequestMeta {
    pub fn of(request: &HttpRequest) -> Self {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let correlation_id = valid_id_header(request.headers(), CORRELATION_ID_HEADER)
            .unwrap_or_else(|| request_id.clone());
        RequestMeta {
            request_id,
            correlation_id,
        }
    }

    pub fn event_metadata(&self, actor_id: Option<Uuid>) -> EventMetadata {
        EventMetadata {
            actor_id,
            correlation_id: Some(self.correlation_id.clone()),
            causation_id: Some(self.request_id.clone()),
            request_id: Some(self.request_id.clone()),
            source: "command-api".to_owned(),
            data_subject: None,
        }
    }
}

/// An `Idempotency-Key` with the scope it is unique in and a fingerprint of the request.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub request_hash: Vec<u8>,
}

impl Idempotency {
    /// Reads the header. Keys are scoped to the caller, or to the route when anonymous; the
    /// fingerprint covers method, path and body.
    pub fn of(
        request: &HttpRequest,
        caller: Option<Uuid>,
        body: &[u8],
    ) -> Result<Option<Self>, ApiError> {
        let Some(value) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::Validation(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
                ))
            })?;
        let scope = match caller {
            Some(user_id) => format!("user:{user_id}"),
            None => format!("anonymous:{} {}", request.method(), request.path()),
        };
        let mut hasher = Sha256::new();
        hasher.update(request.method().as_str().as_bytes());
        hasher.update(b" ");
        hasher.update(request.path().as_bytes());
        hasher.update(b"\n");
        hasher.update(body);
        Ok(Some(Idempotency {
            scope,
            key: key.to_owned(),
            request_hash: hasher.finalize().to_vec(),
        }))
    }
}

/// The authenticated caller: a verified access token whose session is open and whose user
/// is active right now.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Principal);

impl Caller {
    pub fn actor(&self) -> Actor {
        if self.0.platform_admin {
            Actor::PlatformAdmin {
                user_id: self.0.user_id,
            }
        } else {
            Actor::User {
                user_id: self.0.user_id,
                tenant_id: self.0.tenant_id,
                role: self.0.role,
            }
        }
    }

    /// The path's tenant, if the caller may see it; otherwise 404 (never another tenant's
    /// data, nor whether it exists).
    pub fn tenant_in_path(&self, raw: &str) -> Result<Uuid, ApiError> {
        let tenant_id = path_id(raw, "tenant")?;
        if tenant_id == self.0.tenant_id || self.0.platform_admin {
            Ok(tenant_id)
        } else {
            Err(ApiError::NotFound("no such tenant".into()))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin || self.0.platform_admin
    }
}

/// What authenticating a request needs; each API registers one as app data.
pub struct Authenticator {
    pub pool: deadpool_postgres::Pool,
    pub tokens: std::sync::Arc<infra::tokens::Tokens>,
    /// The sessions this instance remembers (ADR 0031); `SessionCache::disabled()` asks
    /// Postgres on every request.
    pub sessions: std::sync::Arc<crate::sessions::SessionCache>,
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<Authenticator>>().cloned();
        let token = bearer_token(request);
        let root_span = request.extensions().get::<RootSpan>().cloned();
        // The traffic middleware may have authenticated the request already.
        let known = request.extensions().get::<Authenticated>().map(|a| a.0);
        Box::pin(async move {
            let principal = match known {
                Some(principal) => principal,
                None => {
                    let state = state.ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!("application state missing"))
                    })?;
                    authenticate_token(&state, &token?).await?
                }
            };
            if let Some(span) = root_span {
                span.record("tenant_id", tracing::field::display(principal.tenant_id));
                span.record("user_id", tracing::field::display(principal.user_id));
            }
            Ok(Caller(principal))
        })
    }
}

/// A request whose bearer token was verified and whose session is open (set by the traffic
/// middleware, read by [`Caller`]).
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Principal);

/// Verifies an access token and checks, in the authentication state, that its session is
/// open and its user active right now — or, for a session this instance authenticated less
/// than `AUTH_CACHE_TTL_MS` ago and heard no change of since, that it was then.
pub async fn authenticate_token(state: &Authenticator, token: &str) -> Result<Principal, ApiError> {
    let claims = state
        .tokens
        .verify_access_token(token)
        .await
        .map_err(|e| match e {
            TokenError::Expired => ApiError::Unauthenticated("the access token has expired".into()),
            TokenError::Invalid => {
                ApiError::Unauthenticated("the access token is not valid".into())
            }
        })?;
    if let Some(principal) = state.sessions.get(&claims) {
        metrics::counter!("eventra_auth_cache_total", "result" => "hit").increment(1);
        return Ok(principal);
    }
    let generation = state.sessions.generation();
    let client = state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    let (principal, session_expires_at) =
        authenticate(&client, &claims).await.map_err(|e| match e {
            AuthenticationError::Rejected => ApiError::Unauthenticated(
                "the session has ended or the account is not active".into(),
            ),
            AuthenticationError::Database(e) => ApiError::Unavailable(e.into()),
        })?;
    if state.sessions.is_listening() {
        metrics::counter!("eventra_auth_cache_total", "result" => "miss").increment(1);
    }
    state
        .sessions
        .keep(generation, principal, session_expires_at);
    Ok(principal)
}

/// The request's bearer token, if it has a well-formed one.
pub fn bearer(request: &HttpRequest) -> Option<String> {
    bearer_token(request).ok()
}

fn bearer_token(request: &HttpRequest) -> Result<String, ApiError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("an Authorization: Bearer token is required".into())
        })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is malformed".into()))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(|| {
        ApiError::Unauthenticated("the Authorization header must be 'Bearer <token>'".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() || token.len() > 4096 {
        return Err(ApiError::Unauthenticated(
            "the Authorization header must be 'Bearer <token>'".into(),
        ));
    }
    Ok(token.trim().to_owned())
}

/// Answers with the request's ids (`X-Request-Id`, `X-Correlation-Id`) so a client can
/// quote them when reporting a problem.
pub async fn echo_request_ids(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(ToString::to_string);
    let correlation_id =
        valid_id_header(request.headers(), CORRELATION_ID_HEADER).or_else(|| request_id.clone());
    let mut response = next.call(request).await?;
    for (name, value) in [
        ("x-request-id", request_id),
        (CORRELATION_ID_HEADER, correlation_id),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

/// Records the tenant on the request's root span (for anonymous commands that name one).
pub fn record_tenant(request: &HttpRequest, tenant_id: Uuid) {
    record_tenant_on(root_span(request).as_ref(), tenant_id);
}

/// The request's root span, to record on from code that cannot hold the request.
pub fn root_span(request: &HttpRequest) -> Option<Span> {
    request
        .extensions()
        .get::<RootSpan>()
        .map(|span| Span::clone(span))
}

/// Records the tenant on a root span taken with [`root_span`].
pub fn record_tenant_on(span: Option<&Span>, tenant_id: Uuid) {
    if let Some(span) = span {
        span.record("tenant_id", tracing::field::display(tenant_id));
    }
}
