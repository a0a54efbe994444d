//! `/v1/tenants/{tenant_id}/members/{user_id}` and `/v1/me/leave`: membership ending, by an
//! admin or by the member.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, path_id};
use uuid::Uuid;

use super::{IdempotencyKey, run_for_caller};
use crate::app_state::AppState;
use crate::commands::UserVersion;
use crate::commands::remove_member::RemoveMember;

/// `DELETE /v1/tenants/{tenant_id}/members/{user_id}`: an admin removes a member.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/members/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "removed: their sessions ended, they can no longer log in", body = UserVersion),
    AdminProblems,
    (status = 404, description = "no such member in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot be removed", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn remove_member(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let user_id = path_id(&path.1, "user")?;
    end_membership(&state, &request, caller, tenant_id, user_id, false).await
}

/// `POST /v1/me/leave`: the caller leaves their tenant.
#[utoipa::path(post, path = "/v1/me/leave", tag = "profile",
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "left: the caller's sessions ended", body = UserVersion),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot leave", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn leave(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, user_id) = (caller.0.tenant_id, caller.0.user_id);
    end_membership(&state, &request, caller, tenant_id, user_id, true).await
}

async fn end_membership(
    state: &AppState,
    request: &HttpRequest,
    caller: Caller,
    tenant_id: Uuid,
    user_id: Uuid,
    leaving: bool,
) -> Result<HttpResponse, ApiError> {
    let command = RemoveMember {
        tenant_id,
        user_id,
        caller_id: caller.0.user_id,
        leaving,
    };
    run_for_caller(state, request, &caller, &[], &command).await
}
