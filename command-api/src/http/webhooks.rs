//! `/v1/tenants/{tenant_id}/webhooks`: a tenant admin registers, changes, rotates the secret
//! of, and deletes the endpoints that receive the tenant's events (ADR 0028).

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, BodyProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, parse_json, path_id};
use domain::webhook::{CreateWebhook, WebhookChanges, parse_event_types, parse_url};
use infra::webhooks::SigningKey;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{IdempotencyKey, run_for_caller};
use crate::app_state::AppState;
use crate::commands::webhooks::{
    SecretRotated, WebhookChange, WebhookCommand, WebhookCreated, WebhookVersion,
};

/// A new webhook: where to send, which event types (`["*"]`: all), and what it is for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// An `https://` URL on the public internet (`http://` and private addresses only where
    /// the operator allows them: `WEBHOOK_ALLOWED_HOSTS`).
    #[schema(
        min_length = 1,
        max_length = 2048,
        example = "https://hooks.example.com/eventra"
    )]
    url: String,
    /// Event types (see `/v1/schemas/events`), or `["*"]` for every type; 1 to 100.
    #[schema(min_items = 1, max_items = 100, example = json!(["user.created", "user.deleted"]))]
    event_types: Vec<String>,
    /// What the endpoint is for, up to 500 characters.
    #[serde(default)]
    #[schema(required = false, max_length = 500)]
    description: Option<String>,
}

/// What to change; what is absent, or already so, stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChangesBody {
    #[serde(default)]
    #[schema(required = false, min_length = 1, max_length = 2048)]
    url: Option<String>,
    #[serde(default)]
    #[schema(required = false, min_items = 1, max_items = 100)]
    event_types: Option<Vec<String>>,
    /// `false` pauses deliveries; `true` resumes them.
    #[serde(default)]
    #[schema(required = false)]
    enabled: Option<bool>,
}

/// The URL, if the domain and the target guard both take it.
async fn checked_url(state: &AppState, input: &str) -> Result<String, ApiError> {
    let url = parse_url(input)?;
    state
        .settings
        .webhook_targets
        .check(&url)
        .await
        .map_err(|e| ApiError::Validation(format!("url: {e}")))?;
    Ok(url)
}

fn event_types(input: &[String]) -> Result<Vec<String>, ApiError> {
    Ok(parse_event_types(input, |t| {
        eventstore::contract::schema_version(t).is_some()
    })?)
}

fn new_secret() -> Result<SigningKey, ApiError> {
    SigningKey::generate().map_err(|e| ApiError::internal(anyhow::anyhow!("{e:?}")))
}

/// `POST /v1/tenants/{tenant_id}/webhooks`: an admin registers an endpoint.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/webhooks", tag = "webhooks",
    request_body = NewWebhookBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 201, description = "the webhook (`webhook.created`) and its signing secret, shown this once", body = WebhookCreated),
    (status = 400, description = "a URL that is not https, does not resolve or resolves to a private address; an unknown event type; a malformed body", body = Problem, content_type = "application/problem+json"),
    AdminProblems,
    (status = 404, description = "not the caller's tenant", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn create_webhook(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    let input: NewWebhookBody = parse_json(&request, &body)?;
    let event_types = event_types(&input.event_types)?;
    let url = checked_url(&state, &input.url).await?;
    let webhook_id = Uuid::now_v7();
    let change = WebhookChange::Create(
        CreateWebhook {
            webhook_id,
            tenant_id,
            url,
            event_types,
            description: input.description,
        },
        new_secret()?,
    );
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, webhook_id),
        change,
        &body,
    )
    .await
}

/// `PATCH /v1/tenants/{tenant_id}/webhooks/{webhook_id}`: an admin changes the URL or the
/// event types, or pauses or resumes deliveries.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}", tag = "webhooks",
    request_body = WebhookChangesBody,
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the webhook after the change (`webhook.updated`, or nothing when nothing changed)", body = WebhookVersion),
    (status = 400, description = "a URL or event type the webhook may not have; a malformed body", body = Problem, content_type = "application/problem+json"),
    AdminProblems,
    (status = 404, description = "no such webhook in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn update_webhook(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let webhook_id = path_id(&path.1, "webhook")?;
    let input: WebhookChangesBody = parse_json(&request, &body)?;
    let event_types = input.event_types.as_deref().map(event_types).transpose()?;
    let url = match input.url.as_deref() {
        Some(url) => Some(checked_url(&state, url).await?),
        None => None,
    };
    let change = WebhookChange::Update(WebhookChanges {
        url,
        event_types,
        enabled: input.enabled,
    });
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, webhook_id),
        change,
        &body,
    )
    .await
}

/// `DELETE /v1/tenants/{tenant_id}/webhooks/{webhook_id}`: an admin deletes a webhook.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}", tag = "webhooks",
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "deleted (`webhook.deleted`)", body = WebhookVersion),
    AdminProblems,
    (status = 404, description = "no such webhook in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let webhook_id = path_id(&path.1, "webhook")?;
    let change = WebhookChange::Delete;
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, webhook_id),
        change,
        &[],
    )
    .await
}

/// `POST /v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret`: a new signing secret,
/// shown this once; deliveries are signed with it from now on.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the new secret (`webhook.secret_rotated`), shown this once", body = SecretRotated),
    AdminProblems,
    (status = 404, description = "no such webhook in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let webhook_id = path_id(&path.1, "webhook")?;
    let change = WebhookChange::RotateSecret(new_secret()?);
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, webhook_id),
        change,
        &[],
    )
    .await
}

/// `POST /v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry`: an
/// admin sends a dead delivery again (a fresh set of attempts, the same `webhook-id`).
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
    (status = 202, description = "the delivery is pending again; workers send it shortly"),
    AdminProblems,
    (status = 404, description = "no such delivery of this webhook in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the delivery is not dead (it is pending, being sent, delivered or discarded)", body = Problem, content_type = "application/problem+json")
))]
pub async fn retry_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let webhook_id = path_id(&path.1, "webhook")?;
    let delivery_id = path_id(&path.2, "delivery")?;
    if !caller.is_admin() {
        return Err(ApiError::Forbidden(
            "only an administrator of the tenant may do this".into(),
        ));
    }
    let client = state
        .store
        .pool()
        .get()
        .await
        .map_err(|e| ApiError::Unavailable(anyhow::anyhow!("database unavailable: {e}")))?;
    let row = client
        .query_opt(
            "WITH retried AS (
                 UPDATE webhook_deliveries
                    SET status = 'pending', attempts = 0, due_at = now(), last_error = NULL,
                        updated_at = now()
                  WHERE delivery_id = $1 AND webhook_id = $2 AND tenant_id = $3 AND status = 'dead'
                 RETURNING status)
             SELECT d.status, (SELECT count(*) FROM retried)
               FROM webhook_deliveries d
              WHERE d.delivery_id = $1 AND d.webhook_id = $2 AND d.tenant_id = $3",
            &[&delivery_id, &webhook_id, &tenant_id],
        )
        .await
        .map_err(|e| ApiError::Unavailable(anyhow::anyhow!("database unavailable: {e}")))?;
    match row {
        None => Err(ApiError::NotFound(
            "no such delivery of this webhook in this tenant".into(),
        )),
        Some(row) if row.get::<_, i64>(1) == 1 => {
            tracing::info!(%tenant_id, %webhook_id, %delivery_id, "dead webhook delivery retried");
            Ok(HttpResponse::Accepted().finish())
        }
        Some(row) => Err(ApiError::Conflict(format!(
            "the delivery is {}, not dead",
            row.get::<_, String>(0)
        ))),
    }
}

async fn execute(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    (tenant_id, webhook_id): (Uuid, Uuid),
    change: WebhookChange,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let command = WebhookCommand {
        tenant_id,
        webhook_id,
        caller_id: caller.0.user_id,
        change,
    };
    run_for_caller(state, request, caller, body, &command).await
}
