//! The query endpoints of the API contract (v1). Everything is tenant-scoped and read-only.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::extract::path_id;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::consistency::{PROJECTION_POSITION_HEADER, min_position, reach};
use crate::pagination::{Cursor, like_pattern, limit};
use crate::startup::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/v1/me", web::get().to(me))
        .route("/v1/tenants/{tenant_id}/users", web::get().to(list_users))
        .route(
            "/v1/tenants/{tenant_id}/users/{user_id}",
            web::get().to(one_user),
        )
        .route("/v1/tenants/{tenant_id}/activity", web::get().to(activity))
        .route("/v1/tenants/{tenant_id}/audit", web::get().to(audit))
        .route("/v1/projections", web::get().to(projections));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let started = std::time::Instant::now();
    let check = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    })
    .await
    .unwrap_or_else(|_| Err("timed out after 2s".into()));
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match check {
        Ok(()) => HttpResponse::Ok()
            .json(json!({"status": "ready", "checks": {"postgres": {"status": "up", "latency_ms": latency_ms}}})),
        Err(error) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "checks": {"postgres": {"status": "down", "latency_ms": latency_ms, "error": error}}
        })),
    }
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

fn answer(body: Value, position: i64) -> HttpResponse {
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

fn user_json(row: &Row) -> Value {
    json!({
        "user_id": row.get::<_, Uuid>("user_id"),
        "tenant_id": row.get::<_, Uuid>("tenant_id"),
        "email": row.get::<_, String>("email"),
        "display_name": row.get::<_, String>("display_name"),
        "phone": row.get::<_, Option<String>>("phone"),
        "locale": row.get::<_, Option<String>>("locale"),
        "role": row.get::<_, Option<String>>("role"),
        "status": row.get::<_, String>("status"),
        "created_at": row.get::<_, DateTime<Utc>>("created_at"),
        "updated_at": row.get::<_, DateTime<Utc>>("updated_at"),
        "version": row.get::<_, i64>("version"),
    })
}

const USER_COLUMNS: &str = "user_id, tenant_id, email, display_name, phone, locale, role, status, created_at, updated_at, version";

/// `GET /v1/me`: the caller's own profile.
async fn me(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let client = connection(&state).await?;
    let position = reach(
        &client,
        "users",
        min_position(&request)?,
        state.settings.read_your_writes_timeout,
    )
    .await?;
    let row = client
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM rm_users WHERE user_id = $1"),
            &[&caller.0.user_id],
        )
        .await
        .map_err(database)?
        .ok_or_else(|| {
            ApiError::NotFound("the profile is not available yet; retry with X-Min-Position".into())
        })?;
    Ok(answer(user_json(&row), position))
}

/// `GET /v1/tenants/{tenant_id}/users/{user_id}`: one user (admins; members see only
/// themselves).
async fn one_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let user_id = path_id(&path.1, "user")?;
    if user_id != caller.0.user_id {
        require_admin(&caller)?;
    }
    let client = connection(&state).await?;
    let position = reach(
        &client,
        "users",
        min_position(&request)?,
        state.settings.read_your_writes_timeout,
    )
    .await?;
    let row = client
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM rm_users WHERE tenant_id = $1 AND user_id = $2"),
            &[&tenant_id, &user_id],
        )
        .await
        .map_err(database)?
        .ok_or_else(|| ApiError::NotFound("no such user in this tenant".into()))?;
    Ok(answer(user_json(&row), position))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    q: Option<String>,
    role: Option<domain::Role>,
    status: Option<domain::UserStatus>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/tenants/{tenant_id}/users`: the tenant's users (admins), by name or email.
async fn list_users(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let q = text_filter("q", query.q.as_ref(), 200)?;
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, "users"))
        .transpose()?;
    let after_micros = cursor.as_ref().and_then(|c| c.after_created_micros);
    let after_id = cursor.as_ref().and_then(|c| c.after_id);
    let after_time = after_micros.and_then(DateTime::<Utc>::from_timestamp_micros);
    let client = connection(&state).await?;
    let position = reach(
        &client,
        "users",
        min_position(&request)?,
        state.settings.read_your_writes_timeout,
    )
    .await?;
    let rows = client
        .query(
            &format!(
                "SELECT {USER_COLUMNS} FROM rm_users
                  WHERE tenant_id = $1
                    AND ($2::text IS NULL OR email ILIKE $2 OR display_name ILIKE $2)
                    AND ($3::text IS NULL OR role = $3)
                    AND ($4::text IS NULL OR status = $4)
                    AND ($5::timestamptz IS NULL OR (created_at, user_id) > ($5, $6))
                  ORDER BY created_at, user_id
                  LIMIT $7"
            ),
            &[
                &tenant_id,
                &q.as_deref().map(like_pattern),
                &query.role.map(|r| r.as_str()),
                &query.status.map(|s| s.as_str()),
                &after_time,
                &after_id.unwrap_or_default(),
                &(limit + 1),
            ],
        )
        .await
        .map_err(database)?;
    let more = rows.len() as i64 > limit;
    let items: Vec<&Row> = rows.iter().take(limit as usize).collect();
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(
            Cursor {
                kind: "users".into(),
                before_position: None,
                after_created_micros: Some(
                    last.get::<_, DateTime<Utc>>("created_at")
                        .timestamp_micros(),
                ),
                after_id: Some(last.get("user_id")),
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(answer(
        json!({"items": items.iter().map(|row| user_json(row)).collect::<Vec<_>>(), "next_cursor": next_cursor}),
        position,
    ))
}

const ACTIONS: &[&str] = &[
    "signed_up",
    "logged_in",
    "login_failed",
    "profile_updated",
    "role_changed",
    "deactivated",
    "reactivated",
    "session_revoked",
    "erased",
    "platform_admin_granted",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    user_id: Option<Uuid>,
    action: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/tenants/{tenant_id}/activity`: what users did, newest first (admins).
async fn activity(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let action = text_filter("action", query.action.as_ref(), 64)?;
    if let Some(action) = &action
        && !ACTIONS.contains(&action.as_str())
    {
        return Err(ApiError::Validation(format!(
            "action must be one of {}",
            ACTIONS.join(", ")
        )));
    }
    let q = text_filter("q", query.q.as_ref(), 200)?;
    let from = parse_time("from", query.from.as_deref())?;
    let to = parse_time("to", query.to.as_deref())?;
    let before = query
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, "activity"))
        .transpose()?
        .and_then(|c| c.before_position);
    let client = connection(&state).await?;
    let position = reach(
        &client,
        "activity",
        min_position(&request)?,
        state.settings.read_your_writes_timeout,
    )
    .await?;
    let rows = client
        .query(
            "SELECT event_id, position, user_id, actor_id, action, details, occurred_at FROM rm_activity
              WHERE tenant_id = $1
                AND ($2::uuid IS NULL OR user_id = $2)
                AND ($3::text IS NULL OR action = $3)
                AND ($4::text IS NULL OR action ILIKE $4 OR details::text ILIKE $4)
                AND ($5::timestamptz IS NULL OR occurred_at >= $5)
                AND ($6::timestamptz IS NULL OR occurred_at <= $6)
                AND ($7::bigint IS NULL OR position < $7)
              ORDER BY position DESC
              LIMIT $8",
            &[
                &tenant_id,
                &query.user_id,
                &action,
                &q.as_deref().map(like_pattern),
                &from,
                &to,
                &before,
                &(limit + 1),
            ],
        )
        .await
        .map_err(database)?;
    let items: Vec<Value> = rows
        .iter()
        .take(limit as usize)
        .map(|row| {
            json!({
                "event_id": row.get::<_, Uuid>(0),
                "position": row.get::<_, i64>(1),
                "user_id": row.get::<_, Uuid>(2),
                "actor_id": row.get::<_, Option<Uuid>>(3),
                "action": row.get::<_, String>(4),
                "details": row.get::<_, Value>(5),
                "occurred_at": row.get::<_, DateTime<Utc>>(6),
            })
        })
        .collect();
    let next_cursor = log_cursor("activity", rows.len() as i64 > limit, &items);
    Ok(answer(
        json!({"items": items, "next_cursor": next_cursor}),
        position,
    ))
}

fn log_cursor(kind: &str, more: bool, items: &[Value]) -> Option<String> {
    let last = items.last()?["position"].as_i64()?;
    more.then(|| {
        Cursor {
            kind: kind.into(),
            before_position: Some(last),
            after_created_micros: None,
            after_id: None,
        }
        .encode()
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    user_id: Option<Uuid>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/tenants/{tenant_id}/audit`: every event, newest first (admins).
async fn audit(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let event_type = text_filter("type", query.event_type.as_ref(), 64)?;
    if let Some(event_type) = &event_type
        && infra::upcast::current_version(event_type).is_none()
    {
        return Err(ApiError::Validation(format!(
            "type {event_type:?} is not an event type (see docs/events.md)"
        )));
    }
    let q = text_filter("q", query.q.as_ref(), 200)?;
    let from = parse_time("from", query.from.as_deref())?;
    let to = parse_time("to", query.to.as_deref())?;
    let before = query
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, "audit"))
        .transpose()?
        .and_then(|c| c.before_position);
    let client = connection(&state).await?;
    let position = reach(
        &client,
        "audit",
        min_position(&request)?,
        state.settings.read_your_writes_timeout,
    )
    .await?;
    let rows = client
        .query(
            "SELECT event_id, position, event_type, aggregate_type, aggregate_id, actor_id, subject_id, summary, occurred_at
               FROM rm_audit
              WHERE tenant_id = $1
                AND ($2::text IS NULL OR event_type = $2)
                AND ($3::uuid IS NULL OR subject_id = $3 OR actor_id = $3)
                AND ($4::text IS NULL OR summary ILIKE $4 OR event_type ILIKE $4)
                AND ($5::timestamptz IS NULL OR occurred_at >= $5)
                AND ($6::timestamptz IS NULL OR occurred_at <= $6)
                AND ($7::bigint IS NULL OR position < $7)
              ORDER BY position DESC
              LIMIT $8",
            &[
                &tenant_id,
                &event_type,
                &query.user_id,
                &q.as_deref().map(like_pattern),
                &from,
                &to,
                &before,
                &(limit + 1),
            ],
        )
        .await
        .map_err(database)?;
    let items: Vec<Value> = rows
        .iter()
        .take(limit as usize)
        .map(|row| {
            json!({
                "event_id": row.get::<_, Uuid>(0),
                "position": row.get::<_, i64>(1),
                "type": row.get::<_, String>(2),
                "aggregate_type": row.get::<_, String>(3),
                "aggregate_id": row.get::<_, Uuid>(4),
                "actor_id": row.get::<_, Option<Uuid>>(5),
                "subject_id": row.get::<_, Option<Uuid>>(6),
                "summary": row.get::<_, String>(7),
                "occurred_at": row.get::<_, DateTime<Utc>>(8),
            })
        })
        .collect();
    let next_cursor = log_cursor("audit", rows.len() as i64 > limit, &items);
    Ok(answer(
        json!({"items": items, "next_cursor": next_cursor}),
        position,
    ))
}

/// `GET /v1/projections`: each projection's position, lag and state (platform admins).
async fn projections(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    if !caller.0.platform_admin {
        return Err(ApiError::Forbidden(
            "only platform administrators may see the projections".into(),
        ));
    }
    let client = connection(&state).await?;
    let status = projector::status::status(&client).await.map_err(database)?;
    let items: Vec<Value> = std::iter::once(&status.relay)
        .chain(status.projections.iter())
        .map(|entry| {
            json!({
                "name": entry.name,
                "position": entry.position,
                "lag_events": entry.lag_events,
                "lag_seconds": entry.lag_seconds,
                "dead_letters": entry.dead_letters,
                "events_applied": entry.events_applied,
                "last_event_at": entry.last_event_at,
                "state": if entry.lag_events == 0 { "caught_up" } else { "catching_up" },
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "head_position": status.head_position,
        "events": status.events,
        "items": items,
    })))
}
