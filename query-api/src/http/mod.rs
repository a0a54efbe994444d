//! The query endpoints of the API contract (v1), one module per resource. Everything is
//! tenant-scoped and read-only; the helpers here wait for a view to reach the request's
//! `X-Min-Position` and answer with `X-Projection-Position`.

pub mod email_jobs;
pub mod imports;
pub mod invitations;
pub mod logs;
pub mod operations;
pub mod sessions;
pub mod teams;
pub mod tenants;
pub mod users;
pub mod webhooks;

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use api_common::docs::{BearerAuth, Problem, RateLimited};
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use eventstore::Order;
use serde::Serialize;
use utoipa::{IntoParams, OpenApi};

use crate::consistency::{PROJECTION_POSITION_HEADER, min_position};
use crate::state::AppState;

/// The read-your-writes header.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct MinPosition {
    /// Wait (bounded) until the view has applied the event at this position, as answered by
    /// a command.
    #[param(rename = "X-Min-Position", value_type = i64, required = false, minimum = 0)]
    min_position: Option<i64>,
}

/// The query API's OpenAPI document, generated from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(title = "Eventra query API", version = "1", description = "Tenant-scoped reads of the Eventra user platform. Send `X-Min-Position` with the position a command answered to read your own write; answers carry `X-Projection-Position`. Errors are `application/problem+json`."),
    paths(
        api_common::operations::health, api_common::operations::ready,
        api_common::operations::metrics, tenants::tenant, users::me, users::list_users,
        users::one_user, logs::activity, logs::audit, email_jobs::email_jobs, operations::projections,
        teams::list_teams, teams::one_team, invitations::list_invitations, sessions::my_sessions,
        imports::list_imports, imports::one_import, webhooks::list_webhooks,
        webhooks::list_deliveries
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth, &RateLimited),
    tags((name = "tenants"), (name = "profile"), (name = "users"), (name = "teams"), (name = "invitations"), (name = "imports"), (name = "logs"), (name = "email"), (name = "webhooks"), (name = "operations"))
)]
pub struct ApiDoc;

pub fn configure(config: &mut web::ServiceConfig) {
    api_common::docs::configure(config, ApiDoc::openapi());
    api_common::operations::configure(config);
    config
        .service(web::resource("/v1/me").route(web::get().to(users::me)))
        .service(web::resource("/v1/me/sessions").route(web::get().to(sessions::my_sessions)))
        .service(web::resource("/v1/tenants/{tenant_id}").route(web::get().to(tenants::tenant)))
        .service(
            web::resource("/v1/tenants/{tenant_id}/users").route(web::get().to(users::list_users)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/users/{user_id}")
                .route(web::get().to(users::one_user)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/activity").route(web::get().to(logs::activity)),
        )
        .service(web::resource("/v1/tenants/{tenant_id}/audit").route(web::get().to(logs::audit)))
        .service(
            web::resource("/v1/tenants/{tenant_id}/teams").route(web::get().to(teams::list_teams)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/teams/{team_id}")
                .route(web::get().to(teams::one_team)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/invitations")
                .route(web::get().to(invitations::list_invitations)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/email-jobs")
                .route(web::get().to(email_jobs::email_jobs)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/webhooks")
                .route(web::get().to(webhooks::list_webhooks)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries")
                .route(web::get().to(webhooks::list_deliveries)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/imports")
                .route(web::get().to(imports::list_imports)),
        )
        .service(
            web::resource("/v1/tenants/{tenant_id}/imports/{import_id}")
                .route(web::get().to(imports::one_import)),
        )
        .service(web::resource("/v1/projections").route(web::get().to(operations::projections)));
}

/// Waits until the view `projection` has reached the request's `X-Min-Position`, if it
/// names one, holding no connection meanwhile (ADR 0023); the target's place in
/// publication order.
async fn wait_for_view(
    state: &AppState,
    request: &HttpRequest,
    projection: &str,
) -> Result<Option<Order>, ApiError> {
    let Some(position) = min_position(request)?.filter(|p| *p > 0) else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + state.settings.read_your_writes_timeout;
    let target = {
        let client = connection(state).await?;
        crate::consistency::target(&client, position).await?
    };
    // The caller's tenant (authenticated by the traffic middleware) takes the wait's slot.
    let tenant = request
        .extensions()
        .get::<api_common::extract::Authenticated>()
        .map_or(uuid::Uuid::nil(), |caller| caller.0.tenant_id);
    state
        .positions
        .wait_for(tenant, projection, target, deadline)
        .await?;
    Ok(Some(target))
}

/// A connection, once the view `projection` has reached the request's `X-Min-Position`;
/// with the view's position for `X-Projection-Position`.
async fn view(
    state: &AppState,
    request: &HttpRequest,
    projection: &str,
) -> Result<(Object, i64), ApiError> {
    wait_for_view(state, request, projection).await?;
    let client = connection(state).await?;
    let position = crate::consistency::checkpoint(&client, projection)
        .await?
        .position;
    Ok((client, position))
}

/// Runs `read` on a connection to a view and returns its result with the position to
/// report. The checkpoint and `read` go out together (pipelined, one round trip; the
/// checkpoint is read first, so the answer reflects at least that position), after any
/// wait for `X-Min-Position`.
async fn read_view<T>(
    state: &AppState,
    request: &HttpRequest,
    projection: &str,
    read: impl AsyncFnOnce(&Object) -> Result<T, ApiError>,
) -> Result<(T, i64), ApiError> {
    wait_for_view(state, request, projection).await?;
    let client = connection(state).await?;
    let (checkpoint, value) = tokio::try_join!(
        crate::consistency::checkpoint(&client, projection),
        read(&client)
    )?;
    Ok((value, checkpoint.position))
}

/// Like [`view`] for lists whose matches come from the search index: waits for the read
/// model and for the index; the position reported is the index's.
async fn search_view(
    state: &AppState,
    request: &HttpRequest,
    projection: &str,
) -> Result<(Object, i64), ApiError> {
    let target = wait_for_view(state, request, projection).await?;
    let position = state
        .search
        .reach(target, state.settings.read_your_writes_timeout)
        .await?;
    let client = connection(state).await?;
    Ok((client, position))
}

async fn connection(state: &AppState) -> Result<Object, ApiError> {
    state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))
}

fn database(error: tokio_postgres::Error) -> ApiError {
    if error.is_closed() || error.code().is_none() {
        ApiError::Unavailable(error.into())
    } else {
        ApiError::Internal(error.into())
    }
}

fn answer<T: Serialize>(body: T, position: i64) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((PROJECTION_POSITION_HEADER, position.to_string()))
        .json(body)
}

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only administrators of the tenant may see this".into(),
        ))
    }
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::Validation(format!(
                        "{field} must be an RFC 3339 time such as 2026-01-22T10:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// A filter that names one of a fixed set of values (an action, a status).
fn one_of(
    field: &str,
    value: Option<&String>,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    let value = text_filter(field, value, 64)?;
    match value {
        Some(value) if !allowed.contains(&value.as_str()) => Err(ApiError::Validation(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        ))),
        value => Ok(value),
    }
}

fn text_filter(
    field: &str,
    value: Option<&String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match value.map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(ApiError::Validation(format!(
                "{field} must be at most {max} characters without control characters"
            )))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}
