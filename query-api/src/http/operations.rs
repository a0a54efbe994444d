//! What `/ready` checks, and `/v1/projections` for platform administrators.

use actix_web::{HttpResponse, web};
use api_common::docs::Problem;
use api_common::operations::{Checks, Probe};
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, json};
use std::future::Future;
use std::pin::Pin;
use utoipa::ToSchema;

use crate::state::AppState;

use super::{connection, database};

/// The query API depends on PostgreSQL and the search index the projector writes.
pub struct QueryProbe(pub web::Data<AppState>);

impl Probe for QueryProbe {
    fn checks(&self) -> Pin<Box<dyn Future<Output = Checks> + '_>> {
        Box::pin(async move {
            let mut checks = Checks::new();
            checks.postgres(&self.0.pool).await;
            checks
                .check("search_index", async {
                    let position = self.0.search.probe()?;
                    Ok(Map::from_iter([("position".to_owned(), json!(position))]))
                })
                .await;
            checks
        })
    }

    fn before_metrics(&self) {
        infra::metrics::record_pool("query-api", &self.0.pool);
    }
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
