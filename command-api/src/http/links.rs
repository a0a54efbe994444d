//! The one-time links sent by email (ADR 0019): ask for a password reset (anyone, always
//! 202), set a new password with the link, confirm an address with its link, and ask to
//! move the caller's account to a new address.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{BodyProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, RequestMeta, parse_json, path_id, record_tenant};
use chrono::Utc;
use domain::values::{Email, Password};
use domain::{DomainError, User};
use infra::crypto::{LinkToken, token_hash};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account::verify_own_password;
use super::{IdempotencyKey, address_allowed, hash_password, run_anonymous, run_for_caller};
use crate::app_state::AppState;
use crate::commands::links::{
    ConfirmEmail, ConfirmPasswordReset, EmailChangeRequested, EmailConfirmed, NewLink,
    PasswordResetDone, RequestEmailChange,
};

/// The address to send a reset link to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    #[schema(schema_with = api_common::docs::values::email)]
    email: String,
}

/// The same answer whether or not the address has an account.
#[derive(Serialize, ToSchema)]
pub struct ResetRequested {
    #[schema(example = "accepted")]
    pub status: String,
    pub detail: String,
}

/// `POST /v1/tenants/{tenant_id}/password-resets`: anyone asks for a reset link. The request
/// is only queued here; the answer, and the time it takes, are the same whether or not the
/// address has an account (the link, if any, is sent by the projector).
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/password-resets", tag = "sessions",
    request_body = ResetRequestBody,
    params(("tenant_id" = Uuid, Path)),
    responses(
    (status = 202, description = "always, for any well-formed address: if it has an account in the tenant, a one-time link is on its way (`user.password_reset_requested`)", body = ResetRequested),
    (status = 400, description = "the address is not well-formed", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "the tenant id is not a UUID", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn request_password_reset(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = path_id(&path, "tenant")?;
    record_tenant(&request, tenant_id);
    let input: ResetRequestBody = parse_json(&request, &body)?;
    let email = Email::parse(&input.email)?;
    let answer = HttpResponse::Accepted().json(ResetRequested {
        status: "accepted".into(),
        detail: "if the address belongs to an account of this tenant, a link to reset its password is on its way".into(),
    });
    // Past the address's hourly budget the request is dropped, with the same answer.
    if !address_allowed(&state, &request, tenant_id, email.as_str())
        .await
        .0
    {
        tracing::info!(%tenant_id, "password reset asked for too often for one address; dropped");
        return Ok(answer);
    }
    let meta = RequestMeta::of(&request);
    let client = state
        .store
        .pool()
        .get()
        .await
        .map_err(|e| ApiError::Unavailable(anyhow::anyhow!("database unavailable: {e}")))?;
    infra::password_resets::queue(
        &client,
        state.store.keys(),
        tenant_id,
        email.as_str(),
        Some(meta.correlation_id.as_str()),
    )
    .await
    .map_err(ApiError::Internal)?;
    tracing::info!(%tenant_id, "password reset asked for; queued");
    Ok(answer)
}

/// The reset link's token and the new password (the same rules as at signup).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    /// The `token` query parameter of the emailed link.
    #[schema(min_length = 1, max_length = 200)]
    token: String,
    #[schema(schema_with = api_common::docs::values::password)]
    new_password: String,
}

/// `POST /v1/password-resets/confirm`: the holder of a reset link sets a new password; every
/// session of the account ends, a lock of too many wrong passwords ends too.
#[utoipa::path(post, path = "/v1/password-resets/confirm", tag = "sessions",
    request_body = ResetConfirmBody,
    params(IdempotencyKey),
    responses(
    (status = 200, description = "`user.password_reset`; every session ended; a security email", body = PasswordResetDone),
    (status = 400, description = "the token is not valid (or a newer link replaced it), or the new password breaks a rule", body = Problem, content_type = "application/problem+json"),
    (status = 410, description = "the link was already used or has expired", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn confirm_password_reset(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: ResetConfirmBody = parse_json(&request, &body)?;
    let (user, hash) = presented_user(&state, &input.token).await?;
    domain::links::check_reset_link(&user, &hash, Utc::now())?;
    let email = Email::parse(&user.email)?;
    let new_password = Password::parse(&input.new_password, &email)?;
    if let Some(tenant_id) = user.tenant_id {
        record_tenant(&request, tenant_id);
    }
    let new_password_hash = hash_password(&state, new_password).await?;
    let command = ConfirmPasswordReset {
        user_id: user.user_id.ok_or(DomainError::LinkInvalid)?,
        token_hash: hash,
        new_password_hash,
    };
    run_anonymous(&state, &request, &body, &command).await
}

/// An address link's token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfirmBody {
    /// The `token` query parameter of the emailed link.
    #[schema(min_length = 1, max_length = 200)]
    token: String,
}

/// `POST /v1/email-verifications/confirm`: the holder of an address link confirms it — the
/// account's own address (`user.email_verified`), or the new one it moves to
/// (`user.email_changed`; the old address is told).
#[utoipa::path(post, path = "/v1/email-verifications/confirm", tag = "profile",
    request_body = EmailConfirmBody,
    params(IdempotencyKey),
    responses(
    (status = 200, description = "`user.email_verified`, or `user.email_changed` for a new address (its uniqueness moved with it)", body = EmailConfirmed),
    (status = 400, description = "the token is not valid (or a newer link replaced it)", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the new address was taken by another account meanwhile", body = Problem, content_type = "application/problem+json"),
    (status = 410, description = "the link was already used or has expired", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn confirm_email(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: EmailConfirmBody = parse_json(&request, &body)?;
    let (user, hash) = presented_user(&state, &input.token).await?;
    if let Some(tenant_id) = user.tenant_id {
        record_tenant(&request, tenant_id);
    }
    let command = ConfirmEmail {
        user_id: user.user_id.ok_or(DomainError::LinkInvalid)?,
        token_hash: hash,
    };
    run_anonymous(&state, &request, &body, &command).await
}

/// The account a presented link token names, with the token's hash; any token that names no
/// account is the same 400.
async fn presented_user(state: &AppState, token: &str) -> Result<(User, String), ApiError> {
    let user_id = LinkToken::aggregate_of(token).ok_or(DomainError::LinkInvalid)?;
    let unit = state.store.begin_grouped();
    let user = unit.reader().load::<User>(user_id).await;
    unit.rollback().await;
    let user = user?.state;
    if !user.is_present() {
        return Err(DomainError::LinkInvalid.into());
    }
    Ok((user, token_hash(token)))
}

/// The new address and the current password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeBody {
    #[schema(schema_with = api_common::docs::values::email)]
    new_email: String,
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    password: String,
}

/// `POST /v1/me/email`: the caller asks to move their account to a new address. A link goes
/// to the new address; nothing changes until it is confirmed there.
#[utoipa::path(post, path = "/v1/me/email", tag = "profile",
    request_body = EmailChangeBody,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 202, description = "`user.email_change_requested`: the link is on its way to the new address", body = EmailChangeRequested),
    (status = 400, description = "the new address is not well-formed, or is the current one", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the password is not correct (nothing changes)", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the new address belongs to another account of the tenant", body = Problem, content_type = "application/problem+json"),
    BodyProblems,
    KeyProblems
))]
pub async fn change_email(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: EmailChangeBody = parse_json(&request, &body)?;
    let new_email = Email::parse(&input.new_email)?;
    let user_id = caller.0.user_id;
    let verified_hash = verify_own_password(&state, user_id, input.password).await?;
    if verified_hash.is_none() {
        return Err(DomainError::WrongPassword.into());
    }
    let command = RequestEmailChange {
        tenant_id: caller.0.tenant_id,
        user_id,
        verified_hash,
        new_email,
        link: NewLink::for_user(user_id, state.settings.email_verification_ttl)?,
    };
    run_for_caller(&state, &request, &caller, &body, &command).await
}
