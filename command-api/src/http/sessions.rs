//! `/v1/tenants/{tenant_id}/sessions` and `/v1/sessions`: log in, refresh, log out.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{BodyProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, Idempotency, RequestMeta, parse_json, path_id, record_tenant};
use api_common::traffic::Traffic;
use domain::Actor;
use infra::auth::refresh_token_session;
use infra::crypto::token_hash;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{IdempotencyKey, address_allowed, run};
use crate::app_state::AppState;
use crate::commands::log_in::{INVALID_CREDENTIALS, LogIn, SessionIssued, find_account};
use crate::commands::refresh_session::{INVALID_REFRESH, RefreshSession};
use crate::commands::revoke_session::RevokeSession;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LogInBody {
    email: String,
    password: String,
}

/// `POST /v1/tenants/{tenant_id}/sessions`: log in with email and password.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/sessions", tag = "sessions",
    request_body = LogInBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    responses(
    (status = 201, description = "a new session", body = SessionIssued),
    (status = 409, description = "the request with this Idempotency-Key succeeded before; its answer carried credentials, which are never stored (`idempotent-answer-withheld`): send it again with a new key", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such tenant", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "wrong email or password (recorded as user.login_failed)", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the account is deactivated, or its address is not verified and the tenant requires it", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "too many logins for this address in this tenant within the hour (`RATE_LIMIT_LOGIN_PER_ADDRESS_PER_HOUR`, any client), or too many requests from this client", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "seconds until the window ends"))),
    BodyProblems
))]
pub async fn log_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = path_id(&path, "tenant")?;
    record_tenant(&request, tenant_id);
    let input: LogInBody = parse_json(&request, &body)?;
    if input.email.len() > domain::values::Email::MAX_BYTES || input.password.chars().count() > 1024
    {
        return Err(ApiError::Unauthenticated(INVALID_CREDENTIALS.into()));
    }
    let idempotency = Idempotency::of(&request, None, &body)?;
    let (allowed, retry_after) = address_allowed(&state, &request, tenant_id, &input.email).await;
    if !allowed {
        return Err(ApiError::RateLimited {
            detail: "too many logins for this address; try again later".into(),
            retry_after,
        });
    }
    let (owner, checked) = find_account(&state.store, tenant_id, &input.email).await?;
    let password = input.password;
    let verified_hash = state
        .hashing
        .run(move |hashing| match checked {
            Some(hash) if hashing.verify(&password, &hash) => Some(hash),
            Some(_) => None,
            None => {
                hashing.verify_dummy(&password);
                None
            }
        })
        .await
        .map_err(ApiError::Internal)?;
    let Some(user_id) = owner else {
        tracing::info!(%tenant_id, "login for an unknown email");
        return Err(ApiError::Unauthenticated(INVALID_CREDENTIALS.into()));
    };
    let session_id = Uuid::now_v7();
    state
        .tokens
        .ready_to_sign(chrono::Utc::now())
        .map_err(ApiError::Unavailable)?;
    let refresh = state
        .tokens
        .new_refresh_token(session_id)
        .map_err(ApiError::Internal)?;
    let command = LogIn {
        tenant_id,
        user_id,
        verified_hash,
        session_id,
        refresh: &refresh,
        tokens: &state.tokens,
        lockout: state.settings.lockout,
        user_agent: crate::commands::log_in::kept_user_agent(
            request
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        ),
    };
    let meta = RequestMeta::of(&request);
    run(
        &state,
        &meta,
        Actor::Anonymous,
        idempotency.as_ref(),
        &command,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// `POST /v1/sessions/refresh`: rotate the refresh token and get a new access token.
#[utoipa::path(post, path = "/v1/sessions/refresh", tag = "sessions",
    request_body = RefreshBody,
    params(IdempotencyKey),
    responses(
    (status = 200, description = "the rotated refresh token and a new access token", body = SessionIssued),
    (status = 409, description = "the request with this Idempotency-Key succeeded before; its answer carried credentials, which are never stored (`idempotent-answer-withheld`): send it again with a new key", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "invalid, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "this session refreshed too often this hour (`RATE_LIMIT_REFRESH_PER_SESSION_PER_HOUR`), or this client's failed refreshes spent its anonymous budget", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "seconds until the window ends"))),
    BodyProblems
))]
pub async fn refresh_session(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let budget = RefreshBudget::of(&request);
    budget.client_has_room().await?;
    let outcome = refresh(&state, &request, &body, &budget).await;
    if matches!(
        outcome,
        Err(ApiError::Unauthenticated(_)
            | ApiError::MalformedBody(_)
            | ApiError::Validation(_)
            | ApiError::UnsupportedMediaType)
    ) {
        budget.spend_client().await;
    }
    outcome
}

async fn refresh(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
    budget: &RefreshBudget,
) -> Result<HttpResponse, ApiError> {
    let input: RefreshBody = parse_json(request, body)?;
    let session_id = refresh_token_session(&input.refresh_token)
        .ok_or_else(|| ApiError::Unauthenticated(INVALID_REFRESH.into()))?;
    budget.spend_session(session_id).await?;
    let idempotency = Idempotency::of(request, None, body)?;
    state
        .tokens
        .ready_to_sign(chrono::Utc::now())
        .map_err(ApiError::Unavailable)?;
    let next = state
        .tokens
        .new_refresh_token(session_id)
        .map_err(ApiError::Internal)?;
    let span = api_common::extract::root_span(request);
    let command = RefreshSession {
        session_id,
        presented_hash: token_hash(&input.refresh_token),
        next: &next,
        tokens: &state.tokens,
        on_tenant: &move |tenant_id| {
            api_common::extract::record_tenant_on(span.as_ref(), tenant_id)
        },
    };
    let meta = RequestMeta::of(request);
    run(
        state,
        &meta,
        Actor::Anonymous,
        idempotency.as_ref(),
        &command,
    )
    .await
}

/// How a refresh is counted (the traffic gate leaves it to the handler): a well-formed one
/// against its session's `RATE_LIMIT_REFRESH_PER_SESSION_PER_HOUR`, so that many users behind
/// one address refresh independently; a failed one (malformed, unknown session, wrong or
/// reused secret) against the client's anonymous budget, which, once spent, refuses the
/// client's refreshes before any work.
struct RefreshBudget {
    traffic: Option<web::Data<Traffic>>,
    client: String,
}

impl RefreshBudget {
    fn of(request: &HttpRequest) -> Self {
        let traffic = request.app_data::<web::Data<Traffic>>().cloned();
        let client = traffic
            .as_ref()
            .map(|traffic| traffic.client_key(request))
            .unwrap_or_default();
        RefreshBudget { traffic, client }
    }

    async fn client_has_room(&self) -> Result<(), ApiError> {
        let Some(traffic) = &self.traffic else {
            return Ok(());
        };
        let decision = traffic
            .peek(&self.client, traffic.settings().anonymous_per_hour)
            .await;
        if decision.count >= u64::from(decision.limit) {
            return Err(ApiError::RateLimited {
                detail: "too many failed refreshes from this client; try again later".into(),
                retry_after: decision.reset,
            });
        }
        Ok(())
    }

    async fn spend_client(&self) {
        if let Some(traffic) = &self.traffic {
            traffic
                .count(&self.client, traffic.settings().anonymous_per_hour)
                .await;
        }
    }

    async fn spend_session(&self, session_id: Uuid) -> Result<(), ApiError> {
        let Some(traffic) = &self.traffic else {
            return Ok(());
        };
        let decision = traffic
            .count(
                &format!("refresh:{session_id}"),
                traffic.settings().refresh_per_session_per_hour,
            )
            .await;
        if !decision.allowed() {
            return Err(ApiError::RateLimited {
                detail: format!(
                    "this session refreshed {} times this hour; try again in {} s",
                    decision.limit, decision.reset
                ),
                retry_after: decision.reset,
            });
        }
        Ok(())
    }
}

/// `DELETE /v1/sessions/{session_id}`: log out, or an admin ends a member's session.
#[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "sessions",
    params(("session_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 204, description = "the session has ended"),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such session for this caller", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn revoke_session(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session_id = path_id(&path, "session")?;
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &[])?;
    let command = RevokeSession {
        session_id,
        caller_id: caller.0.user_id,
    };
    let meta = RequestMeta::of(&request);
    run(
        &state,
        &meta,
        caller.actor(),
        idempotency.as_ref(),
        &command,
    )
    .await
}
