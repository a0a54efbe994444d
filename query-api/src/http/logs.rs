//! `/v1/tenants/{tenant_id}/activity` and `/v1/tenants/{tenant_id}/audit`: the logs, newest
//! first, paged by position.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::AdminListProblems;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::pagination::{Cursor, like_pattern, limit};
use crate::state::AppState;

use super::{
    MinPosition, answer, database, one_of, parse_time, require_admin, search_view, text_filter,
    view,
};

/// One thing a user did or had done to their account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityItem {
    event_id: Uuid,
    position: i64,
    user_id: Uuid,
    actor_id: Option<Uuid>,
    #[schema(example = "profile_updated")]
    action: String,
    details: Value,
    occurred_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    items: Vec<ActivityItem>,
    next_cursor: Option<String>,
}

/// One event, summarised without personal data.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    event_id: Uuid,
    position: i64,
    #[serde(rename = "type")]
    #[schema(example = "user.profile_updated")]
    event_type: String,
    aggregate_type: String,
    aggregate_id: Uuid,
    actor_id: Option<Uuid>,
    subject_id: Option<Uuid>,
    summary: String,
    occurred_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    items: Vec<AuditItem>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    user_id: Option<Uuid>,
    /// One of signed_up, logged_in, login_failed, profile_updated, role_changed, deactivated,
    /// reactivated, session_revoked, erased, platform_admin_granted.
    action: Option<String>,
    q: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    to: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/tenants/{tenant_id}/activity`: what users did, newest first (admins).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/activity", tag = "logs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ActivityQuery, MinPosition),
    responses(
    (status = 200, description = "activity, newest first (admins)", body = ActivityPage, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    AdminListProblems
))]
pub async fn activity(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let action = one_of(
        "action",
        query.action.as_ref(),
        read_models::activity::ACTIONS,
    )?;
    let window = LogWindow::parse(
        "activity",
        query.q.as_ref(),
        query.from.as_deref(),
        query.to.as_deref(),
        query.cursor.as_deref(),
    )?;
    let (client, position) = view(&state, &request, "activity").await?;
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
                &window.pattern,
                &window.from,
                &window.to,
                &window.before,
                &(limit + 1),
            ],
        )
        .await
        .map_err(database)?;
    let items: Vec<ActivityItem> = rows
        .iter()
        .take(limit as usize)
        .map(|row| ActivityItem {
            event_id: row.get(0),
            position: row.get(1),
            user_id: row.get(2),
            actor_id: row.get(3),
            action: row.get(4),
            details: row.get(5),
            occurred_at: row.get(6),
        })
        .collect();
    let next_cursor = log_cursor(
        "activity",
        rows.len() as i64 > limit,
        items.last().map(|i| i.position),
    );
    Ok(answer(ActivityPage { items, next_cursor }, position))
}

/// The filters every log shares: text, time range, and where the page starts.
pub(super) struct LogWindow {
    pattern: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    before: Option<i64>,
}

impl LogWindow {
    fn parse(
        kind: &str,
        q: Option<&String>,
        from: Option<&str>,
        to: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        Ok(LogWindow {
            pattern: text_filter("q", q, 200)?.as_deref().map(like_pattern),
            from: parse_time("from", from)?,
            to: parse_time("to", to)?,
            before: Cursor::decode_optional(cursor, kind)?.and_then(|c| c.before_position),
        })
    }
}

pub(super) fn log_cursor(kind: &str, more: bool, last: Option<i64>) -> Option<String> {
    let last = last?;
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An event type such as `user.created` (see docs/events.md).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// The actor or the subject.
    user_id: Option<Uuid>,
    #[param(format = DateTime)]
    from: Option<String>,
    #[param(format = DateTime)]
    to: Option<String>,
    q: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/tenants/{tenant_id}/audit`: every event, newest first (admins).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/audit", tag = "logs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), AuditQuery, MinPosition),
    responses(
    (status = 200, description = "every event, newest first (admins)", body = AuditPage, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    AdminListProblems
))]
pub async fn audit(
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
        && eventstore::upcast::current_version(event_type).is_none()
    {
        return Err(ApiError::Validation(format!(
            "type {event_type:?} is not an event type (see docs/events.md)"
        )));
    }
    let window = LogWindow::parse(
        "audit",
        query.q.as_ref(),
        query.from.as_deref(),
        query.to.as_deref(),
        query.cursor.as_deref(),
    )?;
    // Matches come from the search index (full text, filters, tenant term); the rows
    // shown from the audit read model.
    let (client, position) = search_view(&state, &request, "audit").await?;
    let found = state
        .search
        .audit(read_models::search::AuditSearch {
            tenant_id,
            event_type,
            user_id: query.user_id,
            from_micros: window.from.map(|t| t.timestamp_micros()),
            to_micros: window.to.map(|t| t.timestamp_micros()),
            q: text_filter("q", query.q.as_ref(), 200)?,
            before_position: window.before,
            limit: limit as usize,
        })
        .await?;
    let more = found.len() as i64 > limit;
    let ids: Vec<Uuid> = found
        .iter()
        .take(limit as usize)
        .map(|(_, id)| *id)
        .collect();
    let rows = client
        .query(
            "SELECT event_id, position, event_type, aggregate_type, aggregate_id, actor_id, subject_id, summary, occurred_at
               FROM rm_audit WHERE tenant_id = $1 AND event_id = ANY($2)",
            &[&tenant_id, &ids],
        )
        .await
        .map_err(database)?;
    let mut by_id: std::collections::HashMap<Uuid, AuditItem> = rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                AuditItem {
                    event_id: row.get(0),
                    position: row.get(1),
                    event_type: row.get(2),
                    aggregate_type: row.get(3),
                    aggregate_id: row.get(4),
                    actor_id: row.get(5),
                    subject_id: row.get(6),
                    summary: row.get(7),
                    occurred_at: row.get(8),
                },
            )
        })
        .collect();
    let items: Vec<AuditItem> = ids.iter().filter_map(|id| by_id.remove(id)).collect();
    let next_cursor = log_cursor(
        "audit",
        more,
        found.get(limit as usize - 1).map(|(p, _)| *p),
    );
    Ok(answer(AuditPage { items, next_cursor }, position))
}
