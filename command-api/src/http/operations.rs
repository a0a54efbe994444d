//! `/health`, `/ready` and `/metrics`.

use actix_web::{HttpResponse, web};
use api_common::docs::Problem;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::app_state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/ready").route(web::get().to(ready)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
}

/// Readiness: each dependency with its status and latency; 503 when one is down.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "every dependency is up", body = serde_json::Value),
    (status = 503, description = "a dependency is down: a problem naming it, with every check in `checks`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (up, postgres) = api_common::error::postgres_check(state.store.pool()).await;
    api_common::error::readiness(json!({"postgres": postgres}), up)
}

/// `GET /metrics`: Prometheus text (requests by route, method, status and tenant, latency
/// histograms, events appended, rate-limit rejections and usage, connection pool).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")
))]
pub async fn metrics(traffic: web::Data<api_common::traffic::Traffic>) -> HttpResponse {
    api_common::traffic::metrics_endpoint(traffic).await
}
