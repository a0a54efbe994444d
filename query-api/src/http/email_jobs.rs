//! `/v1/tenants/{tenant_id}/email-jobs`: the email queue, for the tenant's admins.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::AdminListProblems;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::pagination::{Cursor, limit};
use crate::state::AppState;

use super::{MinPosition, answer, database, one_of, require_admin, view};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EmailJobQuery {
    /// pending, sending, sent, dead, suppressed or discarded; all when left out.
    status: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One email job: what it sends to whom, and how its attempts went.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailJobItem {
    job_id: Uuid,
    /// The person it is about.
    user_id: Option<Uuid>,
    /// The event that made it (the first one when a burst was coalesced).
    event_id: Uuid,
    #[schema(example = "welcome")]
    template: String,
    #[schema(example = "dead")]
    status: String,
    /// Security alerts are never rate-limited or suppressed.
    security: bool,
    /// Gone (null) once the person is erased.
    recipient: Option<String>,
    attempts: i32,
    /// How many events this one notice covers.
    coalesced_events: i32,
    last_error: Option<String>,
    /// Why the job was deferred, suppressed, retried or discarded.
    note: Option<String>,
    message_id: String,
    created_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    last_attempt_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailJobPage {
    items: Vec<EmailJobItem>,
    next_cursor: Option<String>,
}

/// `GET /v1/tenants/{tenant_id}/email-jobs`: the tenant's email jobs, newest first
/// (admins); `?status=dead` shows what could not be delivered and why.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/email-jobs", tag = "email", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), EmailJobQuery, MinPosition),
    responses(
    (status = 200, description = "email jobs, newest first (admins)", body = EmailJobPage, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    AdminListProblems
))]
pub async fn email_jobs(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<EmailJobQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let status = one_of(
        "status",
        query.status.as_ref(),
        &infra::email_jobs::STATUSES,
    )?;
    let cursor = Cursor::decode_optional(query.cursor.as_deref(), "email-jobs")?;
    let (after_created, after_id) = match &cursor {
        Some(Cursor {
            after_created_micros: Some(micros),
            after_id: Some(id),
            ..
        }) => (DateTime::from_timestamp_micros(*micros), Some(*id)),
        _ => (None, None),
    };
    let (client, position) = view(&state, &request, "email-jobs").await?;
    let rows = client
        .query(
            "SELECT job_id, user_id, event_id, template, status, security, recipient, attempts,
                    coalesced_events, last_error, note, message_id, created_at, due_at,
                    last_attempt_at, sent_at
               FROM email_jobs
              WHERE tenant_id = $1
                AND ($2::text IS NULL OR status = $2)
                AND ($3::timestamptz IS NULL OR (created_at, job_id) < ($3, $4))
              ORDER BY created_at DESC, job_id DESC
              LIMIT $5",
            &[&tenant_id, &status, &after_created, &after_id, &(limit + 1)],
        )
        .await
        .map_err(database)?;
    let items: Vec<EmailJobItem> = rows
        .iter()
        .take(limit as usize)
        .map(|row| EmailJobItem {
            job_id: row.get(0),
            user_id: row.get(1),
            event_id: row.get(2),
            template: row.get(3),
            status: row.get(4),
            security: row.get(5),
            recipient: row.get(6),
            attempts: row.get(7),
            coalesced_events: row.get(8),
            last_error: row.get(9),
            note: row.get(10),
            message_id: row.get(11),
            created_at: row.get(12),
            due_at: row.get(13),
            last_attempt_at: row.get(14),
            sent_at: row.get(15),
        })
        .collect();
    let next_cursor = match items.last() {
        Some(last) if rows.len() as i64 > limit => Some(
            Cursor {
                kind: "email-jobs".into(),
                before_position: None,
                after_created_micros: Some(last.created_at.timestamp_micros()),
                after_id: Some(last.job_id),
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(answer(EmailJobPage { items, next_cursor }, position))
}
