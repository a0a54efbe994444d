//! `GET /v1/tenants/{tenant_id}/invitations`: the tenant's invitations with their status
//! (admins), newest first, from the `invitations` read model.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::AdminListProblems;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::pagination::{Cursor, created_page, limit};
use crate::state::AppState;

use super::{MinPosition, answer, database, one_of, read_view, require_admin};

/// Every status an invitation has.
pub const STATUSES: &[&str] = &["pending", "accepted", "expired", "revoked"];

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    invitation_id: Uuid,
    /// The invited address; null once the account it was for was erased.
    email: Option<String>,
    #[schema(example = "member")]
    role: String,
    team_ids: Vec<Uuid>,
    /// `pending`, `accepted`, `expired` or `revoked`. A pending invitation past its expiry
    /// reads `expired` at once, before the system records it.
    #[schema(example = "pending")]
    status: String,
    invited_by: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// How many emails were sent (1 + resends).
    sent_count: i32,
    accepted_by: Option<Uuid>,
    closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPage {
    items: Vec<InvitationView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvitationsQuery {
    #[param(pattern = "^(pending|accepted|expired|revoked)$")]
    status: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/tenants/{tenant_id}/invitations`: the tenant's invitations (admins).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/invitations", tag = "invitations", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), InvitationsQuery, MinPosition),
    responses(
    (status = 200, description = "the tenant's invitations, newest first (admins)", body = InvitationPage, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    AdminListProblems
))]
pub async fn list_invitations(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<InvitationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let status = one_of("status", query.status.as_ref(), STATUSES)?;
    let cursor = Cursor::decode_optional(query.cursor.as_deref(), "invitations")?;
    let before = cursor
        .as_ref()
        .and_then(|c| c.after_created_micros.zip(c.after_id));
    let (rows, position) = read_view(&state, &request, "invitations", async |client| {
        client
            .query(
                "SELECT * FROM (
                     SELECT invitation_id, email, role, team_ids,
                            CASE WHEN status = 'pending' AND expires_at <= now() THEN 'expired'
                                 ELSE status END AS status,
                            invited_by, created_at, expires_at, sent_count, accepted_by,
                            coalesce(closed_at, CASE WHEN status = 'pending' AND expires_at <= now()
                                                     THEN expires_at END) AS closed_at,
                            (extract(epoch FROM created_at) * 1000000)::bigint AS created_micros
                       FROM rm_invitations
                      WHERE tenant_id = $1
                        AND ($3::bigint IS NULL OR (created_at, invitation_id) <
                             (timestamptz 'epoch' + $3 * interval '1 microsecond', $4))) i
                  WHERE ($2::text IS NULL OR i.status = $2)
                  ORDER BY i.created_at DESC, i.invitation_id DESC LIMIT $5",
                &[
                    &tenant_id,
                    &status,
                    &before.map(|(micros, _)| micros),
                    &before.map(|(_, id)| id),
                    &(limit + 1),
                ],
            )
            .await
            .map_err(database)
    })
    .await?;
    let (rows, next_cursor) = created_page(&rows, limit, "invitations", "invitation_id");
    let items = rows
        .iter()
        .map(|row| InvitationView {
            invitation_id: row.get("invitation_id"),
            email: row.get("email"),
            role: row.get("role"),
            team_ids: row.get("team_ids"),
            status: row.get("status"),
            invited_by: row.get("invited_by"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
            sent_count: row.get("sent_count"),
            accepted_by: row.get("accepted_by"),
            closed_at: row.get("closed_at"),
        })
        .collect();
    Ok(answer(InvitationPage { items, next_cursor }, position))
}
