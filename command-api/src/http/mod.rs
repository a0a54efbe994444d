//! The HTTP side of the command API, one module per resource of the contract (v1). A
//! handler parses and validates the request, builds its command and hands it to
//! [`crate::pipeline::execute`]; request bodies live beside their handlers.

pub mod account;
pub mod asyncapi;
pub mod credentials;
pub mod imports;
pub mod invitations;
pub mod jwks;
pub mod links;
pub mod members;
pub mod profile;
pub mod schemas;
pub mod sessions;
pub mod teams;
pub mod tenants;
pub mod users;
pub mod webhooks;

use actix_web::{HttpResponse, web};
use api_common::docs::{BearerAuth, Problem, RateLimited};
use api_common::error::ApiError;
use api_common::extract::{Idempotency, RequestMeta};
use domain::Actor;
use utoipa::OpenApi;

use crate::app_state::AppState;
use crate::pipeline::{Command, Request, execute};

/// The command API's OpenAPI document, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Eventra command API", version = "1", description = "Commands of the Eventra user platform. Every success answers the `position` of its last event; pass it to the query API as `X-Min-Position` to read your write. Errors are `application/problem+json`."),
    paths(
        api_common::operations::health, api_common::operations::ready,
        api_common::operations::metrics,
        tenants::sign_up_tenant, tenants::change_settings, users::sign_up_user, sessions::log_in,
        sessions::refresh_session, sessions::revoke_session, profile::update_profile,
        users::manage_user, account::delete_user, account::restore_user, account::delete_me,
        account::deactivate_me, credentials::end_other_sessions, credentials::change_password,
        links::request_password_reset, links::confirm_password_reset, links::confirm_email,
        links::change_email, imports::upload, imports::cancel,
        members::remove_member, members::leave,
        invitations::create_invitation, invitations::resend_invitation,
        invitations::revoke_invitation, invitations::accept_invitation,
        teams::create_team, teams::update_team, teams::delete_team, teams::add_team_members,
        teams::remove_team_member, schemas::list, schemas::one, asyncapi::asyncapi, jwks::jwks,
        webhooks::create_webhook, webhooks::update_webhook, webhooks::delete_webhook,
        webhooks::rotate_secret, webhooks::retry_delivery
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth, &RateLimited),
    tags((name = "tenants"), (name = "users"), (name = "invitations"), (name = "teams"), (name = "imports"), (name = "sessions"), (name = "profile"), (name = "webhooks"), (name = "events", description = "The event contract for subscribers: JSON Schemas of every event type's public data"), (name = "operations"))
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
    api_common::operations::configure(config);
    config
        .service(web::resource("/v1/tenants").route(web::post().to(tenants::sign_up_tenant)))
        .service(web::resource("/v1/schemas/events").route(web::get().to(schemas::list)))
        .service(web::resource("/asyncapi.json").route(web::get().to(asyncapi::asyncapi)))
        .service(web::resource("/.well-known/jwks.json").route(web::get().to(jwks::jwks)))
        .service(
            web::resource("/v1/tenants/{tenant_id}/webhooks")
                .route(web::post().to(webhooks::create_webhook)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/webhooks/{webhook_id}")
                .route(web::patch().to(webhooks::update_webhook))
                .route(web::delete().to(webhooks::delete_webhook)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret")
                .route(web::post().to(webhooks::rotate_secret)),
        )
        .service(
            web::resource(
                "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            )
            .route(web::post().to(webhooks::retry_delivery)),
        )
        .service(
            web::resource("/v1/schemas/events/{event_type}/{version}")
                .route(web::get().to(schemas::one)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/members/{user_id}")
                .route(web::delete().to(members::remove_member)),
        )
        .service(web::resource("/v1/me/leave").route(web::post().to(members::leave)))
        .service(
            web::resource("/v1/tenants/{tenant_id}/invitations")
                .route(web::post().to(invitations::create_invitation)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/invitations/{invitation_id}/resend")
                .route(web::post().to(invitations::resend_invitation)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/invitations/{invitation_id}")
                .route(web::delete().to(invitations::revoke_invitation)),
        )
        .service(
            web::resource("/v1/invitations/accept")
                .route(web::post().to(invitations::accept_invitation)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/teams")
                .route(web::post().to(teams::create_team)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/teams/{team_id}")
                .route(web::patch().to(teams::update_team))
                .route(web::delete().to(teams::delete_team)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/teams/{team_id}/members")
                .route(web::post().to(teams::add_team_members)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/teams/{team_id}/members/{user_id}")
                .route(web::delete().to(teams::remove_team_member)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}")
                .route(web::patch().to(tenants::change_settings)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/users")
                .route(web::post().to(users::sign_up_user)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/sessions")
                .route(web::post().to(sessions::log_in)),
        )
        .service(
            web::resource("/v1/sessions/refresh").route(web::post().to(sessions::refresh_session)),
        )
        .service(
            web::resource("/v1/sessions/{session_id}")
                .route(web::delete().to(sessions::revoke_session)),
        )
        .service(
            web::resource("/v1/me")
                .route(web::patch().to(profile::update_profile))
                .route(web::delete().to(account::delete_me)),
        )
        .service(web::resource("/v1/me/deactivate").route(web::post().to(account::deactivate_me)))
        .service(
            web::resource("/v1/me/sessions")
                .route(web::delete().to(credentials::end_other_sessions)),
        )
        .service(web::resource("/v1/me/email").route(web::post().to(links::change_email)))
        .service(
            web::resource("/v1/tenants/{tenant_id}/imports").route(web::post().to(imports::upload)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/imports/{import_id}")
                .route(web::delete().to(imports::cancel)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/password-resets")
                .route(web::post().to(links::request_password_reset)),
        )
        .service(
            web::resource("/v1/password-resets/confirm")
                .route(web::post().to(links::confirm_password_reset)),
        )
        .service(
            web::resource("/v1/email-verifications/confirm")
                .route(web::post().to(links::confirm_email)),
        )
        .service(
            web::resource("/v1/me/password").route(web::post().to(credentials::change_password)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/users/{user_id}/restore")
                .route(web::post().to(account::restore_user)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/users/{user_id}")
                .route(web::patch().to(users::manage_user))
                .route(web::delete().to(account::delete_user)),
        );
}

/// Runs `command` for an HTTP request and turns its answer into the response.
async fn run<C: Command>(
    state: &AppState,
    meta: &RequestMeta,
    actor: Actor,
    idempotency: Option<&Idempotency>,
    command: &C,
) -> Result<HttpResponse, ApiError> {
    let request = Request::http(meta, actor, idempotency);
    execute(
        &state.store,
        state.settings.command_retries,
        &request,
        command,
    )
    .await?
    .into_response()
}

/// Runs `command` for an authenticated caller: their `Idempotency-Key` (scoped to them, the
/// fingerprint over `body`), the request's ids, and the caller as the actor.
async fn run_for_caller<C: Command>(
    state: &AppState,
    request: &actix_web::HttpRequest,
    caller: &api_common::extract::Caller,
    body: &[u8],
    command: &C,
) -> Result<HttpResponse, ApiError> {
    let idempotency = Idempotency::of(request, Some(caller.0.user_id), body)?;
    let meta = RequestMeta::of(request);
    run(state, &meta, caller.actor(), idempotency.as_ref(), command).await
}

/// Counts one more login (or reset request) for an address in a tenant, from whatever client:
/// `false` once the hour's `RATE_LIMIT_LOGIN_PER_ADDRESS_PER_HOUR` is spent, with the seconds
/// until the window ends. The key is the address's blind index, never the address, and an
/// address without an account counts alike, so the limit says nothing about which exist.
async fn address_allowed(
    state: &AppState,
    request: &actix_web::HttpRequest,
    tenant_id: uuid::Uuid,
    email: &str,
) -> (bool, u64) {
    let Some(traffic) = request.app_data::<web::Data<api_common::traffic::Traffic>>() else {
        return (true, 0);
    };
    let hash = state.store.keys().blind_index(
        crate::commands::EMAIL,
        &domain::values::normalise_email(email),
    );
    let key: String = hash.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let decision = traffic
        .count(
            &format!("address:{tenant_id}:{key}"),
            state.settings.login_per_address_per_hour,
        )
        .await;
    (decision.allowed(), decision.reset)
}

/// Runs `command` for an anonymous request (the holder of an emailed link): its
/// `Idempotency-Key` scoped to the route, the fingerprint over `body`.
async fn run_anonymous<C: Command>(
    state: &AppState,
    request: &actix_web::HttpRequest,
    body: &[u8],
    command: &C,
) -> Result<HttpResponse, ApiError> {
    let idempotency = Idempotency::of(request, None, body)?;
    let meta = RequestMeta::of(request);
    run(
        state,
        &meta,
        Actor::Anonymous,
        idempotency.as_ref(),
        command,
    )
    .await
}

/// Hashes a password on the hashing threads (slow by design: never on the request's).
async fn hash_password(
    state: &AppState,
    password: domain::values::Password,
) -> Result<String, ApiError> {
    state
        .hashing
        .run(move |hashing| hashing.hash(password.as_str()))
        .await
        .map_err(ApiError::Internal)?
        .map_err(ApiError::Internal)
}
