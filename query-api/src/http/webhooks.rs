//! `/v1/tenants/{tenant_id}/webhooks`: the tenant's webhooks and each one's deliveries, for
//! the tenant's admins (ADR 0028). Never a secret: it is shown once, when it is made.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminListProblems, Problem};
use api_common::extract::path_id;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::pagination::{Cursor, created_page, limit};
use crate::state::AppState;

use super::{MinPosition, answer, database, one_of, require_admin, view};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// pending, sending, delivered, dead or discarded; all when left out.
    status: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One webhook, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    webhook_id: Uuid,
    #[schema(example = "https://hooks.example.com/eventra")]
    url: String,
    #[schema(example = json!(["user.created"]))]
    event_types: Vec<String>,
    description: Option<String>,
    /// Whether deliveries go out (an admin pauses with `enabled: false`; the system turns off
    /// a webhook whose endpoint failed every attempt for a day).
    enabled: bool,
    /// Why the system turned it off, while it is off for that reason.
    #[schema(
        example = "every attempt failed since 2026-12-05 10:00 UTC (the endpoint answered 500)"
    )]
    disabled_reason: Option<String>,
    /// The version of the signing secret in use (each rotation adds one).
    secret_version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookPage {
    items: Vec<WebhookView>,
    next_cursor: Option<String>,
}

/// One delivery of one event to one webhook, and how its attempts went.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` header of every attempt.
    delivery_id: Uuid,
    event_id: Uuid,
    #[schema(example = "user.created")]
    event_type: String,
    position: i64,
    #[schema(example = "delivered")]
    status: String,
    attempts: i32,
    /// The endpoint's last HTTP status, if it answered.
    last_status: Option<i32>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    /// When the next attempt is due (pending deliveries).
    due_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    items: Vec<DeliveryView>,
    next_cursor: Option<String>,
}

/// The (created, in microseconds; id) a page continues after.
fn after_of(cursor: Option<&Cursor>) -> Option<(i64, Uuid)> {
    cursor.and_then(|c| c.after_created_micros.zip(c.after_id))
}

/// `GET /v1/tenants/{tenant_id}/webhooks`: the tenant's webhooks, newest first (admins).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PageQuery, MinPosition),
    responses(
    (status = 200, description = "webhooks, newest first (admins); never a secret", body = WebhookPage, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    AdminListProblems
))]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let cursor = Cursor::decode_optional(query.cursor.as_deref(), "webhooks")?;
    let after = after_of(cursor.as_ref());
    let (client, position) = view(&state, &request, "webhook-deliveries").await?;
    let rows = client
        .query(
            "SELECT webhook_id, url, event_types, description, enabled, secret_version, created_at, updated_at,
                    disabled_reason, (extract(epoch FROM created_at) * 1000000)::bigint AS created_micros
               FROM rm_webhooks
              WHERE tenant_id = $1 AND NOT deleted
                AND ($2::bigint IS NULL OR (created_at, webhook_id) <
                     (timestamptz 'epoch' + $2 * interval '1 microsecond', $3))
              ORDER BY created_at DESC, webhook_id DESC
              LIMIT $4",
            &[
                &tenant_id,
                &after.map(|(micros, _)| micros),
                &after.map(|(_, id)| id),
                &(limit + 1),
            ],
        )
        .await
        .map_err(database)?;
    let (rows, next_cursor) = created_page(&rows, limit, "webhooks", "webhook_id");
    let items: Vec<WebhookView> = rows
        .iter()
        .map(|row| WebhookView {
            webhook_id: row.get(0),
            url: row.get(1),
            event_types: row.get(2),
            description: row.get(3),
            enabled: row.get(4),
            secret_version: row.get(5),
            created_at: row.get(6),
            updated_at: row.get(7),
            disabled_reason: row.get(8),
        })
        .collect();
    Ok(answer(WebhookPage { items, next_cursor }, position))
}

/// `GET /v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries`: a webhook's deliveries,
/// newest first (admins); `?status=dead` shows what could not be delivered and why.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), DeliveryQuery, MinPosition),
    responses(
    (status = 200, description = "deliveries, newest first (admins)", body = DeliveryPage, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    (status = 404, description = "no such webhook in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    AdminListProblems
))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let webhook_id = path_id(&path.1, "webhook")?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let status = one_of(
        "status",
        query.status.as_ref(),
        &infra::webhooks::DELIVERY_STATUSES,
    )?;
    let cursor = Cursor::decode_optional(query.cursor.as_deref(), "deliveries")?;
    let after = after_of(cursor.as_ref());
    let (client, position) = view(&state, &request, "webhook-deliveries").await?;
    let known = client
        .query_opt(
            "SELECT 1 FROM rm_webhooks WHERE webhook_id = $1 AND tenant_id = $2 AND NOT deleted",
            &[&webhook_id, &tenant_id],
        )
        .await
        .map_err(database)?;
    if known.is_none() {
        return Err(ApiError::NotFound("no such webhook in this tenant".into()));
    }
    let rows = client
        .query(
            "SELECT delivery_id, event_id, event_type, position, status, attempts, last_status,
                    last_error, created_at, due_at, delivered_at,
                    (extract(epoch FROM created_at) * 1000000)::bigint AS created_micros
               FROM webhook_deliveries
              WHERE webhook_id = $1 AND tenant_id = $2
                AND ($3::text IS NULL OR status = $3)
                AND ($4::bigint IS NULL OR (created_at, delivery_id) <
                     (timestamptz 'epoch' + $4 * interval '1 microsecond', $5))
              ORDER BY created_at DESC, delivery_id DESC
              LIMIT $6",
            &[
                &webhook_id,
                &tenant_id,
                &status,
                &after.map(|(micros, _)| micros),
                &after.map(|(_, id)| id),
                &(limit + 1),
            ],
        )
        .await
        .map_err(database)?;
    let (rows, next_cursor) = created_page(&rows, limit, "deliveries", "delivery_id");
    let items: Vec<DeliveryView> = rows
        .iter()
        .map(|row| DeliveryView {
            delivery_id: row.get(0),
            event_id: row.get(1),
            event_type: row.get(2),
            position: row.get(3),
            status: row.get(4),
            attempts: row.get(5),
            last_status: row.get(6),
            last_error: row.get(7),
            created_at: row.get(8),
            due_at: row.get(9),
            delivered_at: row.get(10),
        })
        .collect();
    Ok(answer(DeliveryPage { items, next_cursor }, position))
}
