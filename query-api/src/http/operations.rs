//! `/health`, `/ready`, `/metrics`, and `/v1/projections` for platform administrators.

use actix_web::{HttpResponse, web};
use api_common::docs::Problem;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::state::AppState;

use super::{connection, database};

#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "the process answers", body = Value)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "every dependency is up", body = Value),
    (status = 503, description = "a dependency is down: a problem naming it, with every check in `checks`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (postgres_up, postgres) = api_common::error::postgres_check(&state.pool).await;
    let started = std::time::Instant::now();
    let index = state.search.probe();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let search_index = match &index {
        Ok(position) => json!({"status": "up", "latency_ms": latency_ms, "position": position}),
        Err(error) => json!({"status": "down", "latency_ms": latency_ms, "error": error}),
    };
    let checks = json!({"postgres": postgres, "search_index": search_index});
    api_common::error::readiness(checks, postgres_up && index.is_ok())
}

/// `GET /metrics`: Prometheus text (requests by route, method, status and tenant, latency
/// histograms, events appended, rate-limit rejections and usage, connection pool).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")
))]
pub async fn metrics(traffic: web::Data<api_common::traffic::Traffic>) -> HttpResponse {
    api_common::traffic::metrics_endpoint(traffic).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionView {
    #[schema(example = "users")]
    name: String,
    position: i64,
    lag_events: i64,
    lag_seconds: f64,
    dead_letters: i64,
    events_applied: i64,
    last_event_at: Option<DateTime<Utc>>,
    #[schema(example = "caught_up")]
    state: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionsView {
    head_position: i64,
    events: i64,
    items: Vec<ProjectionView>,
}

/// `GET /v1/projections`: each projection's position, lag and state (platform admins).
#[utoipa::path(get, path = "/v1/projections", tag = "operations", security(("bearer" = [])),
    responses(
    (status = 200, description = "each projection's position, lag and state (platform admins)", body = ProjectionsView),
    (status = 401, description = "no valid access token, or the session ended or the account is deactivated", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "only platform administrators", body = Problem, content_type = "application/problem+json")
))]
pub async fn projections(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    if !caller.0.platform_admin {
        return Err(ApiError::Forbidden(
            "only platform administrators may see the projections".into(),
        ));
    }
    let client = connection(&state).await?;
    let status = read_models::projections::status(&client)
        .await
        .map_err(database)?;
    let items = std::iter::once(&status.relay)
        .chain(status.projections.iter())
        .map(|entry| ProjectionView {
            name: entry.name.clone(),
            position: entry.position,
            lag_events: entry.lag_events,
            lag_seconds: entry.lag_seconds,
            dead_letters: entry.dead_letters,
            events_applied: entry.events_applied,
            last_event_at: entry.last_event_at,
            state: if entry.lag_events == 0 {
                "caught_up"
            } else {
                "catching_up"
            }
            .into(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ProjectionsView {
        head_position: status.head_position,
        events: status.events,
        items,
    }))
}
