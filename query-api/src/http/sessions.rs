//! `GET /v1/me/sessions`: the caller's open sessions, from the sessions read model.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{Problem, ReadProblems};
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;

use super::{MinPosition, answer, database, read_view};

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    session_id: Uuid,
    created_at: DateTime<Utc>,
    /// The last time it was used to get a new access token (its creation until then).
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The client it was opened from, as its `User-Agent` said.
    user_agent: Option<String>,
    /// The session this request comes with.
    current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first (at most 100).
    items: Vec<SessionView>,
}

/// `GET /v1/me/sessions`: the caller's sessions that are open now.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "profile", security(("bearer" = [])),
    params(MinPosition),
    responses(
    (status = 200, description = "the caller's open sessions", body = SessionList, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    (status = 400, description = "malformed X-Min-Position", body = Problem, content_type = "application/problem+json"),
    ReadProblems
))]
pub async fn my_sessions(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (user_id, current) = (caller.0.user_id, caller.0.session_id);
    let (rows, position) = read_view(&state, &request, "sessions", async |client| {
        client
            .query(
                "SELECT session_id, created_at, coalesce(last_refreshed_at, created_at), expires_at, user_agent
                   FROM rm_sessions
                  WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
                  ORDER BY created_at DESC LIMIT 100",
                &[&user_id],
            )
            .await
            .map_err(database)
    })
    .await?;
    let items = rows
        .iter()
        .map(|row| {
            let session_id: Uuid = row.get(0);
            SessionView {
                session_id,
                created_at: row.get(1),
                last_used_at: row.get(2),
                expires_at: row.get(3),
                user_agent: row.get(4),
                current: session_id == current,
            }
        })
        .collect();
    Ok(answer(SessionList { items }, position))
}
