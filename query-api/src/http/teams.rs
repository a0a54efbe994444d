//! `/v1/tenants/{tenant_id}/teams`: the tenant's teams (to every member of the tenant), one
//! team with its members, from the `teams` read model.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{Problem, ReadProblems};
use api_common::extract::path_id;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::pagination::{Cursor, created_page, like_pattern, limit};
use crate::state::AppState;

use super::{MinPosition, answer, database, read_view, text_filter};

/// The most members one team's answer lists (`member_count` counts them all).
const MAX_MEMBERS_LISTED: i64 = 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    team_id: Uuid,
    #[schema(example = "Front desk")]
    name: String,
    description: Option<String>,
    member_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamPage {
    items: Vec<TeamView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberView {
    user_id: Uuid,
    display_name: String,
    #[schema(example = "member")]
    role: Option<String>,
    added_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamWithMembers {
    #[serde(flatten)]
    team: TeamView,
    /// The members, in the order they were added (at most 1000).
    members: Vec<TeamMemberView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TeamsQuery {
    /// Matches the team's name (case-insensitive).
    q: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

const TEAM_COLUMNS: &str = "t.team_id, t.name, t.description, t.created_at, t.updated_at,
     (SELECT count(*) FROM rm_team_members m WHERE m.team_id = t.team_id) AS member_count";

fn team_view(row: &Row) -> TeamView {
    TeamView {
        team_id: row.get("team_id"),
        name: row.get("name"),
        description: row.get("description"),
        member_count: row.get("member_count"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// `GET /v1/tenants/{tenant_id}/teams`: the tenant's teams, oldest first, by name.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/teams", tag = "teams", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), TeamsQuery, MinPosition),
    responses(
    (status = 200, description = "the tenant's teams (every member may see them)", body = TeamPage, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    (status = 400, description = "a malformed filter, cursor or X-Min-Position", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "not the caller's tenant", body = Problem, content_type = "application/problem+json"),
    ReadProblems
))]
pub async fn list_teams(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<TeamsQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    let limit = limit(query.limit)?;
    let q = text_filter("q", query.q.as_ref(), 200)?.map(|q| like_pattern(&q));
    let cursor = Cursor::decode_optional(query.cursor.as_deref(), "teams")?;
    let after = cursor
        .as_ref()
        .and_then(|c| c.after_created_micros.zip(c.after_id));
    let (rows, position) = read_view(&state, &request, "teams", async |client| {
        client
            .query(
                &format!(
                    "SELECT {TEAM_COLUMNS}, (extract(epoch FROM t.created_at) * 1000000)::bigint AS created_micros
                       FROM rm_teams t
                      WHERE t.tenant_id = $1
                        AND ($2::text IS NULL OR t.name ILIKE $2)
                        AND ($3::bigint IS NULL OR (t.created_at, t.team_id) >
                             (timestamptz 'epoch' + $3 * interval '1 microsecond', $4))
                      ORDER BY t.created_at, t.team_id LIMIT $5"
                ),
                &[
                    &tenant_id,
                    &q,
                    &after.map(|(micros, _)| micros),
                    &after.map(|(_, id)| id),
                    &(limit + 1),
                ],
            )
            .await
            .map_err(database)
    })
    .await?;
    let (rows, next_cursor) = created_page(&rows, limit, "teams", "team_id");
    let items = rows.iter().map(team_view).collect();
    Ok(answer(TeamPage { items, next_cursor }, position))
}

/// `GET /v1/tenants/{tenant_id}/teams/{team_id}`: one team with its members.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/teams/{team_id}", tag = "teams", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("team_id" = Uuid, Path), MinPosition),
    responses(
    (status = 200, description = "the team and its members", body = TeamWithMembers, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    (status = 400, description = "malformed X-Min-Position", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such team in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    ReadProblems
))]
pub async fn one_team(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let team_id = path_id(&path.1, "team")?;
    let ((team, members), position) = read_view(&state, &request, "teams", async |client| {
        let team = client
            .query_opt(
                &format!("SELECT {TEAM_COLUMNS} FROM rm_teams t WHERE t.team_id = $1 AND t.tenant_id = $2"),
                &[&team_id, &tenant_id],
            )
            .await
            .map_err(database)?;
        let members = client
            .query(
                "SELECT m.user_id, coalesce(u.display_name, '') AS display_name, u.role, m.added_at
                   FROM rm_team_members m LEFT JOIN rm_users u ON u.user_id = m.user_id
                  WHERE m.team_id = $1 AND m.tenant_id = $2
                  ORDER BY m.added_at, m.user_id LIMIT $3",
                &[&team_id, &tenant_id, &MAX_MEMBERS_LISTED],
            )
            .await
            .map_err(database)?;
        Ok((team, members))
    })
    .await?;
    let team = team.ok_or_else(|| ApiError::NotFound("no such team in this tenant".into()))?;
    let members = members
        .iter()
        .map(|row| TeamMemberView {
            user_id: row.get("user_id"),
            display_name: row.get("display_name"),
            role: row.get("role"),
            added_at: row.get("added_at"),
        })
        .collect();
    Ok(answer(
        TeamWithMembers {
            team: team_view(&team),
            members,
        },
        position,
    ))
}
