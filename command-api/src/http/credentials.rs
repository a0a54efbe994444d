//! `/v1/me/sessions` and `/v1/me/password`: the caller ends their other sessions, or changes
//! their password (which ends them too).

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{BodyProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, parse_json};
use domain::values::{Email, Password};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::account::verify_own_password;
use super::{IdempotencyKey, hash_password, run_for_caller};
use crate::app_state::AppState;
use crate::commands::credentials::{
    ChangeCredentials, Credentials, PasswordChanged, SessionsEnded,
};

/// Which sessions to end.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionsScope {
    /// `others`: every session but the one this request comes with.
    #[param(pattern = "^others$")]
    scope: Option<String>,
}

/// `DELETE /v1/me/sessions?scope=others`: the caller ends every other session at once.
#[utoipa::path(delete, path = "/v1/me/sessions", tag = "profile",
    params(SessionsScope, IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "`user.session_revoked` for each other session; one security email says how many", body = SessionsEnded),
    (status = 400, description = "`scope` is not `others`", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn end_other_sessions(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    query: web::Query<SessionsScope>,
) -> Result<HttpResponse, ApiError> {
    if query.scope.as_deref().map(str::trim) != Some("others") {
        return Err(ApiError::Validation(
            "scope must be others (the session of this request stays)".into(),
        ));
    }
    change(
        &state,
        &request,
        &caller,
        Credentials::EndOtherSessions,
        &[],
    )
    .await
}

/// The current password and the new one (the same rules as at signup).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    current_password: String,
    #[schema(schema_with = api_common::docs::values::password)]
    new_password: String,
}

/// `POST /v1/me/password`: the caller changes their password; every other session ends.
#[utoipa::path(post, path = "/v1/me/password", tag = "profile",
    request_body = PasswordChange,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "`user.password_changed`; the other sessions ended; a security email", body = PasswordChanged),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the current password is not correct (nothing changes)", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn change_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: PasswordChange = parse_json(&request, &body)?;
    let unit = state.store.begin_grouped();
    let user = unit.reader().load::<domain::User>(caller.0.user_id).await;
    unit.rollback().await;
    let email = Email::parse(&user?.state.email)?;
    let new_password = Password::parse(&input.new_password, &email)?;
    let verified_hash =
        verify_own_password(&state, caller.0.user_id, input.current_password).await?;
    if verified_hash.is_none() {
        return Err(domain::DomainError::WrongPassword.into());
    }
    let new_password_hash = hash_password(&state, new_password).await?;
    let change_to = Credentials::ChangePassword {
        verified_hash,
        new_password_hash,
    };
    change(&state, &request, &caller, change_to, &body).await
}

async fn change(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    change: Credentials,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let command = ChangeCredentials {
        tenant_id: caller.0.tenant_id,
        user_id: caller.0.user_id,
        session_id: caller.0.session_id,
        change,
    };
    run_for_caller(state, request, caller, body, &command).await
}
