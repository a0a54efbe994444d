//! `/v1/tenants/{tenant_id}/teams`: an admin creates, renames or describes, and deletes
//! teams, and adds and removes their members.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, BodyProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, parse_json, path_id};
use domain::team::{CreateTeam, TeamChanges};
use domain::values::{TeamDescription, TeamName};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{IdempotencyKey, run_for_caller};
use crate::app_state::AppState;
use crate::commands::teams::{TeamChange, TeamCommand, TeamVersion};

/// A new team: a name (1 to 100 characters) and what it is for (up to 500).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeamBody {
    #[schema(schema_with = api_common::docs::values::team_name)]
    name: String,
    #[serde(default)]
    #[schema(required = false, schema_with = api_common::docs::values::team_description)]
    description: Option<String>,
}

/// What to change; what is absent, or already so, stays. An empty description clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamChangesBody {
    #[serde(default)]
    #[schema(required = false, schema_with = api_common::docs::values::team_name)]
    name: Option<String>,
    #[serde(default)]
    #[schema(required = false, schema_with = api_common::docs::values::team_description)]
    description: Option<String>,
}

/// Members of the tenant to add (1 to 1000 ids); those already in are left as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMembersBody {
    #[schema(min_items = 1, max_items = 1000)]
    user_ids: Vec<Uuid>,
}

/// `POST /v1/tenants/{tenant_id}/teams`: an admin creates a team.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/teams", tag = "teams",
    request_body = NewTeamBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 201, description = "the team (`team.created`)", body = TeamVersion),
    AdminProblems,
    (status = 404, description = "not the caller's tenant", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn create_team(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    let input: NewTeamBody = parse_json(&request, &body)?;
    let team_id = Uuid::now_v7();
    let change = TeamChange::Create(CreateTeam {
        team_id,
        tenant_id,
        name: TeamName::parse(&input.name)?,
        description: input
            .description
            .as_deref()
            .map(TeamDescription::parse)
            .transpose()?,
    });
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, team_id),
        change,
        &body,
    )
    .await
}

/// `PATCH /v1/tenants/{tenant_id}/teams/{team_id}`: an admin renames or describes a team.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/teams/{team_id}", tag = "teams",
    request_body = TeamChangesBody,
    params(("tenant_id" = Uuid, Path), ("team_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the team after the change (`team.updated`, or nothing when nothing changed)", body = TeamVersion),
    AdminProblems,
    (status = 404, description = "no such team in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn update_team(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let team_id = path_id(&path.1, "team")?;
    let input: TeamChangesBody = parse_json(&request, &body)?;
    let change = TeamChange::Update(TeamChanges {
        name: input.name.as_deref().map(TeamName::parse).transpose()?,
        description: input
            .description
            .as_deref()
            .map(TeamDescription::parse)
            .transpose()?,
    });
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, team_id),
        change,
        &body,
    )
    .await
}

/// `DELETE /v1/tenants/{tenant_id}/teams/{team_id}`: an admin deletes a team (its members
/// stay members of the tenant).
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/teams/{team_id}", tag = "teams",
    params(("tenant_id" = Uuid, Path), ("team_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "deleted (`team.deleted`)", body = TeamVersion),
    AdminProblems,
    (status = 404, description = "no such team in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn delete_team(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let team_id = path_id(&path.1, "team")?;
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, team_id),
        TeamChange::Delete,
        &[],
    )
    .await
}

/// `POST /v1/tenants/{tenant_id}/teams/{team_id}/members`: an admin adds members.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/teams/{team_id}/members", tag = "teams",
    request_body = TeamMembersBody,
    params(("tenant_id" = Uuid, Path), ("team_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "`team.members_added` with those not already in (nothing when all were)", body = TeamVersion),
    (status = 400, description = "an id that is not a member of the tenant (nobody is added), or a malformed body", body = Problem, content_type = "application/problem+json"),
    AdminProblems,
    (status = 404, description = "no such team in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn add_team_members(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let team_id = path_id(&path.1, "team")?;
    let input: TeamMembersBody = parse_json(&request, &body)?;
    let change = TeamChange::AddMembers(input.user_ids);
    execute(
        &state,
        &request,
        &caller,
        (tenant_id, team_id),
        change,
        &body,
    )
    .await
}

/// `DELETE /v1/tenants/{tenant_id}/teams/{team_id}/members/{user_id}`: an admin takes a
/// member out of a team.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/teams/{team_id}/members/{user_id}", tag = "teams",
    params(("tenant_id" = Uuid, Path), ("team_id" = Uuid, Path), ("user_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "`team.members_removed`", body = TeamVersion),
    AdminProblems,
    (status = 404, description = "no such team in the caller's tenant, or the user is not in it", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn remove_team_member(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let team_id = path_id(&path.1, "team")?;
    let user_id = path_id(&path.2, "user")?;
    let change = TeamChange::RemoveMember(user_id);
    execute(&state, &request, &caller, (tenant_id, team_id), change, &[]).await
}

async fn execute(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    (tenant_id, team_id): (Uuid, Uuid),
    change: TeamChange,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let command = TeamCommand {
        tenant_id,
        team_id,
        caller_id: caller.0.user_id,
        change,
    };
    run_for_caller(state, request, caller, body, &command).await
}
