//! The command endpoints of the API contract (v1).

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{BearerAuth, Problem, RateLimited};
use chrono::Utc;
use domain::event::LoginFailure;
use domain::session::{Refresh, RefreshOutcome};
use domain::tenant::SignUpTenant;
use domain::user::{LoginOutcome, NewSession, ProfileChanges, SignUpUser};
use domain::values::{normalise_email, validate_display_name, validate_email, validate_password};
use domain::{Actor, Context, DomainEvent, Plan, Role};
use infra::auth::refresh_token_session;
use infra::crypto::token_hash;
use infra::store::{AppendedEvent, ExpectedVersion, UnitOfWork};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::commands::{Answer, execute, execute_grouped};
use crate::startup::AppState;
use crate::state;
use api_common::error::ApiError;
use api_common::extract::{Caller, Idempotency, RequestMeta, parse_json, path_id, record_tenant};

/// The reservation kind for a user's email within a tenant.
const EMAIL: &str = "email";

/// The command API's OpenAPI document, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "Eventra command API", version = "1", description = "Commands of the Eventra user platform. Every success answers the `position` of its last event; pass it to the query API as `X-Min-Position` to read your write. Errors are `application/problem+json`."),
    paths(health, ready, metrics, sign_up_tenant, sign_up_user, log_in, refresh_session, revoke_session, update_profile, manage_user, erase_user),
    components(schemas(Problem)),
    modifiers(&BearerAuth, &RateLimited),
    tags((name = "tenants"), (name = "users"), (name = "sessions"), (name = "profile"), (name = "operations"))
)]
pub struct ApiDoc;

/// The `Idempotency-Key` header every command accepts.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyKey {
    /// A retry with the same key and request returns the first answer and appends nothing;
    /// the same key with another request is a 422.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    idempotency_key: Option<String>,
}

pub fn configure(config: &mut web::ServiceConfig) {
    api_common::docs::configure(config, ApiDoc::openapi());
    config
        .service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/ready").route(web::get().to(ready)))
        .service(web::resource("/metrics").route(web::get().to(metrics)))
        .service(web::resource("/v1/tenants").route(web::post().to(sign_up_tenant)))
        .service(web::resource("/v1/tenants/{tenant_id}/users").route(web::post().to(sign_up_user)))
        .service(web::resource("/v1/tenants/{tenant_id}/sessions").route(web::post().to(log_in)))
        .service(web::resource("/v1/sessions/refresh").route(web::post().to(refresh_session)))
        .service(web::resource("/v1/sessions/{session_id}").route(web::delete().to(revoke_session)))
        .service(web::resource("/v1/me").route(web::patch().to(update_profile)))
        .service(
            web::resource("/v1/tenants/{tenant_id}/users/{user_id}")
                .route(web::patch().to(manage_user))
                .route(web::delete().to(erase_user)),
        );
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
    })
}

/// Readiness: each dependency with its status and latency; 503 when one is down.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "every dependency is up", body = serde_json::Value),
    (status = 503, description = "a dependency is down: a problem naming it, with every check in `checks`", body = Problem, content_type = "application/problem+json"),
))]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (up, postgres) = api_common::error::postgres_check(state.store.pool()).await;
    api_common::error::readiness(json!({"postgres": postgres}), up)
}

fn last_position(appended: &[AppendedEvent], otherwise: i64) -> i64 {
    appended
        .iter()
        .map(|e| e.position)
        .max()
        .unwrap_or(otherwise)
}

/// Appends `events` to the stream of `user_id`, expected at the version it was loaded at.
async fn append_to_user(
    unit: &UnitOfWork,
    tenant_id: Uuid,
    user_id: Uuid,
    user: &state::Loaded<domain::User>,
    events: Vec<domain::UserEvent>,
    metadata: &infra::envelope::EventMetadata,
    at: chrono::DateTime<Utc>,
) -> Result<Vec<AppendedEvent>, ApiError> {
    let mut after = user.state.clone();
    for event in &events {
        after.apply_at(event, at);
    }
    let appended = unit
        .append(
            tenant_id,
            &[ExpectedVersion {
                aggregate_id: user_id,
                version: user.version,
            }],
            &DomainEvent::user(user_id, events),
            metadata,
            at,
        )
        .await?;
    // The next command on this user reads only what others append after these.
    if let Some(last) = appended.last() {
        unit.keep_once_committed(
            "user",
            user_id,
            infra::store::Kept {
                state: std::sync::Arc::new(after),
                version: last.sequence,
                last_position: last.position,
            },
        );
    }
    Ok(appended)
}

/// `{user_id, version, position}` after appending to a user's stream (what was appended,
/// or where the stream stood when nothing was).
fn user_version_answer(
    user_id: Uuid,
    user: &state::Loaded<domain::User>,
    appended: &[AppendedEvent],
) -> Result<Answer, ApiError> {
    Ok(Answer::ok(to_json(&UserVersion {
        user_id,
        version: user.version + appended.len() as i64,
        position: last_position(appended, user.last_position),
    })?))
}

fn context(actor: Actor) -> Context {
    Context {
        now: Utc::now(),
        actor,
    }
}

async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    state
        .hashing
        .run(move |hashing| hashing.hash(&password))
        .await
        .map_err(ApiError::Internal)?
        .map_err(ApiError::Internal)
}

/// A new user: email (unique in the tenant, case-insensitive), password (10 to 128
/// characters, not the email), display name (1 to 100 characters).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    #[schema(
        example = "ada@acme.example",
        max_length = 254,
        pattern = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"
    )]
    email: String,
    #[schema(example = "correct horse battery", min_length = 10, max_length = 128, format = Password)]
    password: String,
    #[schema(
        example = "Ada",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F]*[^\s\u0000-\u001F\u007F][^\u0000-\u001F\u007F]*$"
    )]
    display_name: String,
}

impl NewUserBody {
    fn validate(&self) -> Result<(), ApiError> {
        validate_email(self.email.trim())?;
        validate_password(&self.password, &self.email)?;
        validate_display_name(self.display_name.trim())?;
        Ok(())
    }
}

/// The subscription plan of a tenant.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum PlanInput {
    #[default]
    Standard,
    Premium,
}

impl From<PlanInput> for Plan {
    fn from(plan: PlanInput) -> Self {
        match plan {
            PlanInput::Standard => Plan::Standard,
            PlanInput::Premium => Plan::Premium,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignUpTenantBody {
    #[schema(
        example = "Acme",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F]*[^\s\u0000-\u001F\u007F][^\u0000-\u001F\u007F]*$"
    )]
    name: String,
    #[serde(default)]
    plan: PlanInput,
    admin: NewUserBody,
}

#[derive(Serialize, ToSchema)]
struct TenantCreated {
    tenant_id: Uuid,
    admin_user_id: Uuid,
    /// The position of the last event appended: pass it as `X-Min-Position` to read it.
    position: i64,
}

#[derive(Serialize, ToSchema)]
struct UserCreated {
    user_id: Uuid,
    position: i64,
}

#[derive(Serialize, ToSchema)]
struct SessionIssued {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Rotates on every refresh; presenting an already-used one ends the session.
    refresh_token: String,
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: i64,
    session_id: Uuid,
    position: i64,
}

#[derive(Serialize, ToSchema)]
struct UserVersion {
    user_id: Uuid,
    /// The version of the user's stream after the command.
    version: i64,
    position: i64,
}

#[derive(Serialize, ToSchema)]
struct UserErased {
    user_id: Uuid,
    position: i64,
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: String,
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

/// `POST /v1/tenants`: a tenant and its first admin.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = SignUpTenantBody,
    params(IdempotencyKey),
    responses(
    (status = 201, description = "the tenant and its first admin", body = TenantCreated),
    (status = 400, description = "malformed body or invalid input", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the email is taken", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json")
))]
async fn sign_up_tenant(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: SignUpTenantBody = parse_json(&request, &body)?;
    domain::values::validate_tenant_name(input.name.trim())?;
    input.admin.validate()?;
    let idempotency = Idempotency::of(&request, None, &body)?;
    let meta = RequestMeta::of(&request);
    let password_hash = hash_password(&state, input.admin.password.clone()).await?;
    let tenant_id = Uuid::now_v7();
    let admin_user_id = Uuid::now_v7();
    record_tenant(&request, tenant_id);
    let answer = execute(
        &state.store,
        idempotency.as_ref(),
        state.settings.command_retries,
        async |unit| {
            let tenant = state::tenant(unit, tenant_id).await?;
            let ctx = context(Actor::Anonymous);
            let (tenant_events, user_events) = domain::tenant::sign_up_tenant(
                &tenant.state,
                SignUpTenant {
                    tenant_id,
                    name: input.name.clone(),
                    plan: input.plan.into(),
                    admin_user_id,
                    admin_email: input.admin.email.clone(),
                    admin_display_name: input.admin.display_name.clone(),
                    admin_password_hash: password_hash.clone(),
                },
                &ctx,
            )?;
            let email_hash = unit
                .keys()
                .blind_index(EMAIL, &normalise_email(&input.admin.email));
            unit.reserve(tenant_id, EMAIL, &email_hash, admin_user_id)
                .await?;
            let mut events: Vec<DomainEvent> = tenant_events
                .into_iter()
                .map(|event| DomainEvent::Tenant { tenant_id, event })
                .collect();
            events.extend(DomainEvent::user(admin_user_id, user_events));
            let appended = unit
                .append(
                    tenant_id,
                    &[
                        ExpectedVersion {
                            aggregate_id: tenant_id,
                            version: tenant.version,
                        },
                        ExpectedVersion {
                            aggregate_id: admin_user_id,
                            version: 0,
                        },
                    ],
                    &events,
                    &meta.event_metadata(Some(admin_user_id)),
                    ctx.now,
                )
                .await?;
            tracing::info!(%tenant_id, %admin_user_id, "tenant signed up");
            Ok(Answer::created(to_json(&TenantCreated {
                tenant_id,
                admin_user_id,
                position: last_position(&appended, 0),
            })?))
        },
    )
    .await?;
    answer.into_response()
}

/// `POST /v1/tenants/{tenant_id}/users`: a user signs up under a tenant.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/users", tag = "users",
    request_body = NewUserBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    responses(
    (status = 201, description = "the user, a member of the tenant", body = UserCreated),
    (status = 400, description = "malformed body or invalid input", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the email is taken in this tenant", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json")
))]
async fn sign_up_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = path_id(&path, "tenant")?;
    record_tenant(&request, tenant_id);
    let input: NewUserBody = parse_json(&request, &body)?;
    input.validate()?;
    let idempotency = Idempotency::of(&request, None, &body)?;
    let meta = RequestMeta::of(&request);
    let password_hash = hash_password(&state, input.password.clone()).await?;
    let user_id = Uuid::now_v7();
    let answer = execute(
        &state.store,
        idempotency.as_ref(),
        state.settings.command_retries,
        async |unit| {
            let tenant = state::tenant(unit, tenant_id).await?;
            let ctx = context(Actor::Anonymous);
            let events = domain::user::sign_up(
                &tenant.state,
                &domain::User::default(),
                SignUpUser {
                    user_id,
                    tenant_id,
                    email: input.email.clone(),
                    display_name: input.display_name.clone(),
                    password_hash: password_hash.clone(),
                },
                &ctx,
            )?;
            let email_hash = unit
                .keys()
                .blind_index(EMAIL, &normalise_email(&input.email));
            unit.reserve(tenant_id, EMAIL, &email_hash, user_id).await?;
            let appended = unit
                .append(
                    tenant_id,
                    &[ExpectedVersion {
                        aggregate_id: user_id,
                        version: 0,
                    }],
                    &DomainEvent::user(user_id, events),
                    &meta.event_metadata(Some(user_id)),
                    ctx.now,
                )
                .await?;
            tracing::info!(%tenant_id, %user_id, "user signed up");
            Ok(Answer::created(to_json(&UserCreated {
                user_id,
                position: last_position(&appended, 0),
            })?))
        },
    )
    .await?;
    answer.into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LogInBody {
    email: String,
    password: String,
}

const INVALID_CREDENTIALS: &str = "the email or password is not correct";

/// `POST /v1/tenants/{tenant_id}/sessions`: log in with email and password.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/sessions", tag = "sessions",
    request_body = LogInBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    responses(
    (status = 201, description = "a new session", body = SessionIssued),
    (status = 400, description = "malformed body or invalid input", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such tenant", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "wrong email or password (recorded as user.login_failed)", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the account is deactivated", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json")
))]
async fn log_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = path_id(&path, "tenant")?;
    record_tenant(&request, tenant_id);
    let input: LogInBody = parse_json(&request, &body)?;
    if input.email.len() > domain::values::MAX_EMAIL_BYTES || input.password.chars().count() > 1024
    {
        return Err(ApiError::Unauthenticated(INVALID_CREDENTIALS.into()));
    }
    let idempotency = Idempotency::of(&request, None, &body)?;
    let meta = RequestMeta::of(&request);

    // Find the account and check the password before the transaction: hashing is slow and
    // must not hold a connection or a lock.
    let email_hash = state
        .store
        .keys()
        .blind_index(EMAIL, &normalise_email(&input.email));
    let (owner, checked) = {
        // Reads only: no transaction of its own.
        let unit = state.store.begin_grouped();
        let owner = unit
            .reservation_owner(tenant_id, EMAIL, &email_hash)
            .await?;
        let user = match owner {
            Some(user_id) => Some(state::user(&unit, user_id).await?.state),
            None => None,
        };
        unit.rollback().await;
        (owner, user.map(|u| u.password_hash))
    };
    let password = input.password.clone();
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
    let refresh = state
        .tokens
        .new_refresh_token(session_id)
        .map_err(ApiError::Internal)?;
    let answer = execute_grouped(
        &state.store,
        idempotency.as_ref(),
        state.settings.command_retries,
        async |unit| {
            let user = state::user(unit, user_id).await?;
            let ctx = context(Actor::Anonymous);
            let verified = verified_hash.as_deref() == Some(user.state.password_hash.as_str())
                && user.state.is_present();
            let outcome = domain::user::log_in(
                &user.state,
                verified,
                NewSession {
                    session_id,
                    refresh_token_hash: refresh.hash.clone(),
                    expires_at: ctx.now + state.tokens.refresh_ttl,
                },
                &ctx,
            )?;
            match outcome {
                LoginOutcome::Succeeded(events) => {
                    let appended = unit
                        .append(
                            tenant_id,
                            &[ExpectedVersion {
                                aggregate_id: session_id,
                                version: 0,
                            }],
                            &DomainEvent::session(session_id, events),
                            &meta.event_metadata(Some(user_id)),
                            ctx.now,
                        )
                        .await?;
                    let role = user.state.role.unwrap_or(Role::Member);
                    let access_token = state
                        .tokens
                        .issue_access_token(user_id, tenant_id, session_id, role, ctx.now)
                        .map_err(ApiError::Internal)?;
                    tracing::info!(%tenant_id, %user_id, %session_id, "user logged in");
                    Ok(Answer::created(to_json(&SessionIssued {
                        access_token,
                        refresh_token: refresh.token.expose().clone(),
                        token_type: "Bearer".into(),
                        expires_in: state.tokens.access_ttl.num_seconds(),
                        session_id,
                        position: last_position(&appended, 0),
                    })?))
                }
                LoginOutcome::Failed(events, reason) => {
                    unit.append(
                        tenant_id,
                        &[ExpectedVersion {
                            aggregate_id: user_id,
                            version: user.version,
                        }],
                        &DomainEvent::user(user_id, events),
                        &meta.event_metadata(Some(user_id)),
                        ctx.now,
                    )
                    .await?;
                    tracing::info!(%tenant_id, %user_id, ?reason, "login failed");
                    Ok(Answer::Refused(match reason {
                        LoginFailure::InvalidPassword => {
                            ApiError::Unauthenticated(INVALID_CREDENTIALS.into())
                        }
                        LoginFailure::Deactivated => {
                            ApiError::Forbidden("the account is deactivated".into())
                        }
                    }))
                }
            }
        },
    )
    .await?;
    answer.into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

const INVALID_REFRESH: &str = "the refresh token is not valid";

/// `POST /v1/sessions/refresh`: rotate the refresh token and get a new access token.
#[utoipa::path(post, path = "/v1/sessions/refresh", tag = "sessions",
    request_body = RefreshBody,
    params(IdempotencyKey),
    responses(
    (status = 200, description = "the rotated refresh token and a new access token", body = SessionIssued),
    (status = 400, description = "malformed body or invalid input", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "invalid, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json")
))]
async fn refresh_session(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: RefreshBody = parse_json(&request, &body)?;
    let session_id = refresh_token_session(&input.refresh_token)
        .ok_or_else(|| ApiError::Unauthenticated(INVALID_REFRESH.into()))?;
    let idempotency = Idempotency::of(&request, None, &body)?;
    let meta = RequestMeta::of(&request);
    let presented_hash = token_hash(&input.refresh_token);
    let next = state
        .tokens
        .new_refresh_token(session_id)
        .map_err(ApiError::Internal)?;
    let answer = execute_grouped(&state.store, idempotency.as_ref(), state.settings.command_retries, async |unit| {
        let session = state::session(unit, session_id).await?;
        let (Some(user_id), Some(tenant_id)) = (session.state.user_id, session.state.tenant_id) else {
            return Err(ApiError::Unauthenticated(INVALID_REFRESH.into()));
        };
        record_tenant(&request, tenant_id);
        let user = state::user(unit, user_id).await?;
        let ctx = context(Actor::Anonymous);
        let outcome = domain::session::refresh(
            &session.state,
            &user.state,
            Refresh {
                presented_hash: presented_hash.clone(),
                new_hash: next.hash.clone(),
                new_expires_at: ctx.now + state.tokens.refresh_ttl,
            },
            &ctx,
        )?;
        let expected = [ExpectedVersion {
            aggregate_id: session_id,
            version: session.version,
        }];
        let metadata = meta.event_metadata(Some(user_id));
        match outcome {
            RefreshOutcome::Rotated(events) => {
                let appended = unit
                    .append(tenant_id, &expected, &DomainEvent::session(session_id, events), &metadata, ctx.now)
                    .await?;
                let role = user.state.role.unwrap_or(Role::Member);
                let access_token = state
                    .tokens
                    .issue_access_token(user_id, tenant_id, session_id, role, ctx.now)
                    .map_err(ApiError::Internal)?;
                Ok(Answer::ok(to_json(&SessionIssued {
                    access_token,
                    refresh_token: next.token.expose().clone(),
                    token_type: "Bearer".into(),
                    expires_in: state.tokens.access_ttl.num_seconds(),
                    session_id,
                    position: last_position(&appended, session.last_position),
                })?))
            }
            RefreshOutcome::Rejected(events) => {
                if !events.is_empty() {
                    tracing::warn!(%tenant_id, %user_id, %session_id, "a rotated refresh token was reused; session closed");
                    unit.append(tenant_id, &expected, &DomainEvent::session(session_id, events), &metadata, ctx.now)
                        .await?;
                }
                Ok(Answer::Refused(ApiError::Unauthenticated(INVALID_REFRESH.into())))
            }
        }
    })
    .await?;
    answer.into_response()
}

/// `DELETE /v1/sessions/{session_id}`: log out, or an admin ends a member's session.
#[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "sessions",
    params(("session_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 204, description = "the session has ended"),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such session for this caller", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json"),
    (status = 400, description = "invalid Idempotency-Key", body = Problem, content_type = "application/problem+json")
))]
async fn revoke_session(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session_id = path_id(&path, "session")?;
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &[])?;
    let meta = RequestMeta::of(&request);
    let answer = execute_grouped(
        &state.store,
        idempotency.as_ref(),
        state.settings.command_retries,
        async |unit| {
            let session = state::session(unit, session_id).await?;
            let ctx = context(caller.actor());
            let events = domain::session::revoke(&session.state, &ctx)?;
            let tenant_id = session
                .state
                .tenant_id
                .ok_or(domain::DomainError::SessionNotFound)?;
            unit.append(
                tenant_id,
                &[ExpectedVersion {
                    aggregate_id: session_id,
                    version: session.version,
                }],
                &DomainEvent::session(session_id, events),
                &meta.event_metadata(Some(caller.0.user_id)),
                ctx.now,
            )
            .await?;
            Ok(Answer::no_content())
        },
    )
    .await?;
    answer.into_response()
}

/// A field that may be absent but, when given, not `null`.
fn not_null(field: &str, value: Option<Option<String>>) -> Result<Option<String>, ApiError> {
    match value {
        Some(None) => Err(ApiError::Validation(format!(
            "{field} cannot be null; leave it out to keep it"
        ))),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateProfileBody {
    /// 1 to 100 characters; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F]*[^\s\u0000-\u001F\u007F][^\u0000-\u001F\u007F]*$"
    )]
    display_name: Option<Option<String>>,
    /// E.164, such as `+4915112345678`; `null` clears the phone number.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "+4915112345678", pattern = r"^\+[0-9]{8,15}$")]
    phone: Option<Option<String>>,
    /// A BCP 47 language tag such as `en` or `de-CH`; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = String,
        required = false,
        example = "de-CH",
        max_length = 35,
        pattern = "^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$"
    )]
    locale: Option<Option<String>>,
}

/// `PATCH /v1/me`: the caller updates their own profile.
#[utoipa::path(patch, path = "/v1/me", tag = "profile",
    request_body = UpdateProfileBody,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the profile's new version", body = UserVersion),
    (status = 400, description = "malformed body or invalid input", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "changed concurrently too often", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json")
))]
async fn update_profile(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: UpdateProfileBody = parse_json(&request, &body)?;
    let display_name = not_null("display_name", input.display_name)?;
    let locale = not_null("locale", input.locale)?;
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &body)?;
    let meta = RequestMeta::of(&request);
    let user_id = caller.0.user_id;
    let answer = execute_grouped(
        &state.store,
        idempotency.as_ref(),
        state.settings.command_retries,
        async |unit| {
            let user = state::user(unit, user_id).await?;
            let ctx = context(Actor::User {
                user_id,
                tenant_id: caller.0.tenant_id,
                role: caller.0.role,
            });
            let events = domain::user::update_profile(
                &user.state,
                ProfileChanges {
                    display_name: display_name.clone(),
                    phone: input.phone.clone(),
                    locale: locale.clone(),
                },
                &ctx,
            )?;
            let appended = append_to_user(
                unit,
                caller.0.tenant_id,
                user_id,
                &user,
                events,
                &meta.event_metadata(Some(user_id)),
                ctx.now,
            )
            .await?;
            user_version_answer(user_id, &user, &appended)
        },
    )
    .await?;
    answer.into_response()
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum RoleInput {
    Admin,
    Member,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatusInput {
    Active,
    Deactivated,
}

/// The role and/or status to set; what is absent, or already so, stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ManageUserBody {
    #[serde(default)]
    role: Option<RoleInput>,
    #[serde(default)]
    status: Option<StatusInput>,
}

/// The member `user_id` of `tenant_id` with the tenant's membership view, locked for the
/// rest of the unit of work.
async fn load_member(
    unit: &UnitOfWork,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<(domain::TenantMembers, state::Loaded<domain::User>), ApiError> {
    unit.lock_tenant_membership(tenant_id).await?;
    let members = state::members(unit, tenant_id).await?;
    let user = state::user(unit, user_id).await?;
    if user.state.tenant_id != Some(tenant_id) || !user.state.is_present() {
        return Err(ApiError::NotFound("no such user in this tenant".into()));
    }
    Ok((members, user))
}

/// `PATCH /v1/tenants/{tenant_id}/users/{user_id}`: an admin changes a member's role or
/// status.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "users",
    request_body = ManageUserBody,
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the user's new version", body = UserVersion),
    (status = 400, description = "malformed body or invalid input", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the caller is not an admin of the tenant", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such user in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot be demoted or deactivated", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json")
))]
async fn manage_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let user_id = path_id(&path.1, "user")?;
    let input: ManageUserBody = parse_json(&request, &body)?;
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &body)?;
    let meta = RequestMeta::of(&request);
    let answer = execute(
        &state.store,
        idempotency.as_ref(),
        state.settings.command_retries,
        async |unit| {
            let (mut members, user) = load_member(unit, tenant_id, user_id).await?;
            let mut target = user.state.clone();
            let ctx = context(caller.actor());
            let mut events = Vec::new();
            if let Some(role) = input.role {
                let role = match role {
                    RoleInput::Admin => Role::Admin,
                    RoleInput::Member => Role::Member,
                };
                let decided = domain::user::change_role(&members, &target, role, &ctx)?;
                for event in &decided {
                    members.apply(user_id, event);
                    target.apply(event);
                }
                events.extend(decided);
            }
            if let Some(status) = input.status {
                let decided = match status {
                    StatusInput::Active => domain::user::reactivate(&members, &target, &ctx)?,
                    StatusInput::Deactivated => domain::user::deactivate(&members, &target, &ctx)?,
                };
                events.extend(decided);
            }
            let appended = append_to_user(
                unit,
                tenant_id,
                user_id,
                &user,
                events,
                &meta.event_metadata(Some(caller.0.user_id)),
                ctx.now,
            )
            .await?;
            user_version_answer(user_id, &user, &appended)
        },
    )
    .await?;
    answer.into_response()
}

/// `DELETE /v1/tenants/{tenant_id}/users/{user_id}`: an admin erases a member (GDPR).
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the user is erased: data key destroyed, personal data unreadable", body = UserErased),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the caller is not an admin of the tenant", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such user in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot be erased", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the idempotency key was used for another request", body = Problem, content_type = "application/problem+json"),
    (status = 400, description = "invalid Idempotency-Key", body = Problem, content_type = "application/problem+json")
))]
async fn erase_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let user_id = path_id(&path.1, "user")?;
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &[])?;
    let meta = RequestMeta::of(&request);
    let answer = execute(
        &state.store,
        idempotency.as_ref(),
        state.settings.command_retries,
        async |unit| {
            let (members, user) = load_member(unit, tenant_id, user_id).await?;
            let ctx = context(caller.actor());
            let events = domain::user::erase(&members, &user.state, &ctx)?;
            let appended = append_to_user(
                unit,
                tenant_id,
                user_id,
                &user,
                events,
                &meta.event_metadata(Some(caller.0.user_id)),
                ctx.now,
            )
            .await?;
            queue_deletion_confirmation(unit, tenant_id, &user.state, &appended, ctx.now).await?;
            unit.erase_subject(tenant_id, user_id).await?;
            tracing::info!(%tenant_id, %user_id, "user erased; data key destroyed");
            Ok(Answer::ok(to_json(&UserErased {
                user_id,
                position: last_position(&appended, user.last_position),
            })?))
        },
    )
    .await?;
    answer.into_response()
}

/// The deletion confirmation, queued in the erasure's transaction: the last moment the
/// address can be read. The job gives the address up once it is finished.
async fn queue_deletion_confirmation(
    unit: &UnitOfWork,
    tenant_id: Uuid,
    user: &domain::User,
    appended: &[AppendedEvent],
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let (Some(user_id), Some(deleted)) = (user.user_id, appended.last()) else {
        return Ok(());
    };
    let tenant = state::tenant(unit, tenant_id).await?;
    unit.queue_email(&infra::email_jobs::NewJob {
        tenant_id,
        user_id,
        event_id: deleted.event_id,
        position: deleted.position,
        template: infra::email_jobs::Template::AccountDeleted,
        recipient: user.email.clone(),
        variables: json!({
            "display_name": user.display_name,
            "tenant_name": tenant.state.name,
            "locale": user.locale,
        }),
        due_at: now,
    })
    .await?;
    Ok(())
}

/// `GET /metrics`: Prometheus text (requests by route, method, status and tenant, latency
/// histograms, events appended, rate-limit rejections and usage, connection pool).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")
))]
async fn metrics(traffic: web::Data<api_common::traffic::Traffic>) -> HttpResponse {
    api_common::traffic::metrics_endpoint(traffic).await
}
