//! An account's end: an admin deletes (scheduled, or at once with `?mode=erase`) or restores a
//! member; the user deletes or deactivates their own account, confirmed with their password.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, BodyProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, parse_json, path_id};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{IdempotencyKey, run_for_caller};
use crate::app_state::AppState;
use crate::commands::UserVersion;
use crate::commands::account::{AccountChange, ChangeAccount, DeletionScheduled};
use crate::commands::erase_user::{EraseUser, UserErased};

/// How to delete.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `erase`: GDPR erasure now (the data key destroyed at once). Without it the deletion is
    /// scheduled: locked out now, purged after the tenant's `deletion_grace_days`.
    #[param(pattern = "^erase$")]
    mode: Option<String>,
}

/// `DELETE /v1/tenants/{tenant_id}/users/{user_id}`: an admin deletes a member — scheduled
/// (202), or erased at once with `?mode=erase` (200).
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), DeleteQuery, IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "`?mode=erase`: the user is erased, data key destroyed, personal data unreadable", body = UserErased),
    (status = 202, description = "the deletion is scheduled (`user.deletion_scheduled`): locked out and hidden now, purged at `purge_at` unless restored", body = DeletionScheduled),
    (status = 400, description = "an unknown `mode`", body = Problem, content_type = "application/problem+json"),
    AdminProblems,
    (status = 404, description = "no such user in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot be deleted, or the deletion is already scheduled", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn delete_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let user_id = path_id(&path.1, "user")?;
    match query.mode.as_deref().map(str::trim) {
        Some("erase") => {
            let command = EraseUser {
                tenant_id,
                user_id,
                caller_id: caller.0.user_id,
            };
            run_for_caller(&state, &request, &caller, &[], &command).await
        }
        None | Some("") => {
            let command = ChangeAccount {
                tenant_id,
                user_id,
                caller_id: caller.0.user_id,
                change: AccountChange::ScheduleDeletion,
            };
            run_for_caller(&state, &request, &caller, &[], &command).await
        }
        Some(_) => Err(ApiError::Validation(
            "mode must be erase, or left out to schedule the deletion".into(),
        )),
    }
}

/// `POST /v1/tenants/{tenant_id}/users/{user_id}/restore`: an admin restores an account
/// scheduled for deletion, before its purge.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/users/{user_id}/restore", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "restored (`user.deletion_cancelled`): the user can log in again", body = UserVersion),
    AdminProblems,
    (status = 404, description = "no such user in the caller's tenant (or already purged)", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the account is not scheduled for deletion", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn restore_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let user_id = path_id(&path.1, "user")?;
    let command = ChangeAccount {
        tenant_id,
        user_id,
        caller_id: caller.0.user_id,
        change: AccountChange::Restore,
    };
    run_for_caller(&state, &request, &caller, &[], &command).await
}

/// The caller's current password, confirming a change to their own account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    password: String,
}

/// `DELETE /v1/me`: the caller deletes their own account (scheduled, as an admin's deletion).
#[utoipa::path(delete, path = "/v1/me", tag = "profile",
    request_body = PasswordConfirmation,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 202, description = "the deletion is scheduled: signed out everywhere now, purged at `purge_at`", body = DeletionScheduled),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the password is not correct (nothing changes)", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot delete their account", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn delete_me(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: PasswordConfirmation = parse_json(&request, &body)?;
    let verified_hash = verify_own_password(&state, caller.0.user_id, input.password).await?;
    own_change(
        &state,
        &request,
        &caller,
        AccountChange::DeleteSelf { verified_hash },
        &body,
    )
    .await
}

/// `POST /v1/me/deactivate`: the caller deactivates their own account.
#[utoipa::path(post, path = "/v1/me/deactivate", tag = "profile",
    request_body = PasswordConfirmation,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "deactivated (`user.deactivated` by the user): signed out everywhere; an admin can reactivate", body = UserVersion),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the password is not correct (nothing changes)", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot deactivate their account", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn deactivate_me(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: PasswordConfirmation = parse_json(&request, &body)?;
    let verified_hash = verify_own_password(&state, caller.0.user_id, input.password).await?;
    let change = AccountChange::DeactivateSelf { verified_hash };
    own_change(&state, &request, &caller, change, &body).await
}

async fn own_change(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    change: AccountChange,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let command = ChangeAccount {
        tenant_id: caller.0.tenant_id,
        user_id: caller.0.user_id,
        caller_id: caller.0.user_id,
        change,
    };
    run_for_caller(state, request, caller, body, &command).await
}

/// Checks the caller's password on the hashing threads: the hash it matched, or `None`.
pub(super) async fn verify_own_password(
    state: &AppState,
    user_id: Uuid,
    password: String,
) -> Result<Option<String>, ApiError> {
    if password.chars().count() > 1024 {
        return Ok(None);
    }
    let unit = state.store.begin_grouped();
    let user = unit.reader().load::<domain::User>(user_id).await;
    unit.rollback().await;
    let hash = user?.state.password_hash;
    state
        .hashing
        .run(move |hashing| hashing.verify(&password, &hash).then_some(hash))
        .await
        .map_err(ApiError::Internal)
}
