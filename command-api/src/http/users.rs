//! `/v1/tenants/{tenant_id}/users`: signup under a tenant, and an admin managing or erasing
//! a member.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, BodyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, Idempotency, RequestMeta, parse_json, path_id, record_tenant};
use domain::values::{DisplayName, Email, Password};
use domain::{Actor, Role};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::profile::{present, profile_changes};
use super::{IdempotencyKey, hash_password, run};
use crate::app_state::AppState;
use crate::commands::UserVersion;
use crate::commands::links::NewLink;
use crate::commands::manage_user::{ManageUser, Status};
use crate::commands::sign_up_user::{SignUpUser, UserCreated};

/// A new user: email (unique in the tenant, case-insensitive), password (10 to 128
/// characters, not the email), display name (1 to 100 characters).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    #[schema(schema_with = api_common::docs::values::email)]
    email: String,
    #[schema(schema_with = api_common::docs::values::password)]
    password: String,
    #[schema(schema_with = api_common::docs::values::display_name)]
    display_name: String,
}

/// A new user's values, parsed.
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub display_name: DisplayName,
}

impl NewUserBody {
    pub fn parse(&self) -> Result<NewUser, ApiError> {
        let email = Email::parse(&self.email)?;
        let password = Password::parse(&self.password, &email)?;
        let display_name = DisplayName::parse(&self.display_name)?;
        Ok(NewUser {
            email,
            password,
            display_name,
        })
    }
}

/// `POST /v1/tenants/{tenant_id}/users`: a user signs up under a tenant.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/users", tag = "users",
    request_body = NewUserBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    responses(
    (status = 201, description = "the user, a member of the tenant", body = UserCreated),
    (status = 404, description = "no such tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the email is taken in this tenant", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn sign_up_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = path_id(&path, "tenant")?;
    record_tenant(&request, tenant_id);
    let input: NewUserBody = parse_json(&request, &body)?;
    let input = input.parse()?;
    let idempotency = Idempotency::of(&request, None, &body)?;
    let password_hash = hash_password(&state, input.password).await?;
    let user_id = Uuid::now_v7();
    let verification = NewLink::for_user(user_id, state.settings.email_verification_ttl)?;
    let command = SignUpUser(
        domain::user::SignUpUser {
            user_id,
            tenant_id,
            email: input.email,
            display_name: input.display_name,
            password_hash,
        },
        verification,
    );
    let meta = RequestMeta::of(&request);
    run(
        &state,
        &meta,
        Actor::Anonymous,
        idempotency.as_ref(),
        &command,
    )
    .await
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum RoleInput {
    Admin,
    Member,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatusInput {
    Active,
    Deactivated,
}

/// The role, status and profile fields to set; what is absent, or already so, stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ManageUserBody {
    #[serde(default)]
    role: Option<RoleInput>,
    #[serde(default)]
    status: Option<StatusInput>,
    /// 1 to 100 characters; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, schema_with = api_common::docs::values::display_name)]
    display_name: Option<Option<String>>,
    /// E.164; `null` clears the phone number.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, schema_with = api_common::docs::values::phone_or_null)]
    phone: Option<Option<String>>,
    /// A BCP 47 language tag; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, schema_with = api_common::docs::values::locale)]
    locale: Option<Option<String>>,
}

/// `PATCH /v1/tenants/{tenant_id}/users/{user_id}`: an admin changes a member's role,
/// status or profile (`display_name`, `phone`, `locale`; the member gets the profile notice).
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "users",
    request_body = ManageUserBody,
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the user's new version", body = UserVersion),
    AdminProblems,
    (status = 404, description = "no such user in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the last active admin cannot be demoted or deactivated", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn manage_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let user_id = path_id(&path.1, "user")?;
    let input: ManageUserBody = parse_json(&request, &body)?;
    let profile = profile_changes(input.display_name, input.phone, input.locale)?;
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &body)?;
    let command = ManageUser {
        tenant_id,
        user_id,
        caller_id: caller.0.user_id,
        role: input.role.map(|role| match role {
            RoleInput::Admin => Role::Admin,
            RoleInput::Member => Role::Member,
        }),
        status: input.status.map(|status| match status {
            StatusInput::Active => Status::Active,
            StatusInput::Deactivated => Status::Deactivated,
        }),
        profile,
    };
    let meta = RequestMeta::of(&request);
    run(
        &state,
        &meta,
        caller.actor(),
        idempotency.as_ref(),
        &command,
    )
    .await
}
