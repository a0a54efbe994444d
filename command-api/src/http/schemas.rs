//! `/v1/schemas/events`: the JSON Schema (2020-12) of every event type's public `data`, as
//! webhooks deliver it (ADR 0027). Generated from the event types at start; public, like the
//! OpenAPI document.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use api_common::docs::Problem;
use api_common::error::ApiError;
use eventstore::contract::{self, EventSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// The media type of a JSON Schema document.
const SCHEMA_CONTENT_TYPE: &str = "application/schema+json";

fn schemas() -> &'static [EventSchema] {
    static SCHEMAS: OnceLock<Vec<EventSchema>> = OnceLock::new();
    SCHEMAS.get_or_init(contract::all_schemas)
}

/// One event type's schema.
#[derive(Serialize, ToSchema)]
struct EventSchemaEntry {
    /// The event type, such as `user.created`.
    #[serde(rename = "type")]
    #[schema(example = "user.created")]
    event_type: String,
    /// The schema version of the type's `data` (a CloudEvent's `dataschema` names it).
    #[schema(example = 1)]
    version: i32,
    /// Where this schema alone is served.
    #[schema(example = "/v1/schemas/events/user.created/1")]
    url: String,
    /// The JSON Schema (2020-12) of the type's public `data`.
    #[schema(value_type = Object)]
    schema: Value,
}

#[derive(Serialize, ToSchema)]
struct EventSchemaList {
    items: Vec<EventSchemaEntry>,
}

/// `GET /v1/schemas/events`: every event type's schema, of every version.
#[utoipa::path(get, path = "/v1/schemas/events", tag = "events",
    responses((status = 200, description = "the schema of every event type's public data: the current version of each type, then the retired versions (events stored in them are delivered upcast to the current one)", body = EventSchemaList)))]
pub async fn list() -> HttpResponse {
    let items = schemas()
        .iter()
        .map(|schema| EventSchemaEntry {
            url: format!(
                "/v1/schemas/events/{}/{}",
                schema.event_type, schema.version
            ),
            event_type: schema.event_type.clone(),
            version: schema.version,
            schema: schema.schema.clone(),
        })
        .collect();
    HttpResponse::Ok().json(EventSchemaList { items })
}

/// The path of one schema (documentation only: the handler answers any other path with a
/// 404, never a 400).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SchemaPath {
    /// An event type, such as `user.created`.
    #[param(max_length = 64, pattern = "^[a-z_]+\\.[a-z_]+$")]
    event_type: String,
    /// A schema version of the type (1 or more).
    #[param(minimum = 1)]
    version: i64,
}

/// `GET /v1/schemas/events/{event_type}/{version}`: one event type's schema.
#[utoipa::path(get, path = "/v1/schemas/events/{event_type}/{version}", tag = "events",
    params(SchemaPath),
    responses(
        (status = 200, description = "the JSON Schema of the type's public data", body = Object, content_type = "application/schema+json"),
        (status = 404, description = "no such event type or version", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn one(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (event_type, version) = path.into_inner();
    let version: Option<i32> = version.parse().ok();
    let schema = schemas()
        .iter()
        .find(|s| s.event_type == event_type && Some(s.version) == version)
        .ok_or_else(|| ApiError::NotFound("no event type has a schema of that version".into()))?;
    Ok(HttpResponse::Ok()
        .content_type(SCHEMA_CONTENT_TYPE)
        .json(&schema.schema))
}
