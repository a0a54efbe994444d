//! `/v1/tenants`: a tenant and its first admin; the tenant's settings.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, BodyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, Idempotency, RequestMeta, parse_json, record_tenant};
use domain::tenant::SettingsChanges;
use domain::values::{MailDomain, TenantName};
use domain::{Actor, Plan, SignupPolicy};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::users::NewUserBody;
use super::{IdempotencyKey, hash_password, run};
use crate::app_state::AppState;
use crate::commands::change_tenant_settings::{ChangeTenantSettings, TenantSettings};
use crate::commands::links::NewLink;
use crate::commands::sign_up_tenant::{SignUpTenant, TenantCreated};

/// The subscription plan of a tenant.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum PlanInput {
    #[default]
    Standard,
    Premium,
}

impl From<PlanInput> for Plan {
    fn from(plan: PlanInput) -> Self {
        match plan {
            PlanInput::Standard => Plan::Standard,
            PlanInput::Premium => Plan::Premium,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignUpTenantBody {
    #[schema(schema_with = api_common::docs::values::tenant_name)]
    name: String,
    #[serde(default)]
    plan: PlanInput,
    admin: NewUserBody,
}

/// `POST /v1/tenants`: a tenant and its first admin.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = SignUpTenantBody,
    params(IdempotencyKey),
    responses(
    (status = 201, description = "the tenant and its first admin", body = TenantCreated),
    (status = 409, description = "the email is taken", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn sign_up_tenant(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: SignUpTenantBody = parse_json(&request, &body)?;
    let name = TenantName::parse(&input.name)?;
    let admin = input.admin.parse()?;
    let idempotency = Idempotency::of(&request, None, &body)?;
    let admin_password_hash = hash_password(&state, admin.password).await?;
    let tenant_id = Uuid::now_v7();
    record_tenant(&request, tenant_id);
    let admin_user_id = Uuid::now_v7();
    let verification = NewLink::for_user(admin_user_id, state.settings.email_verification_ttl)?;
    let command = SignUpTenant(
        domain::tenant::SignUpTenant {
            tenant_id,
            name,
            plan: input.plan.into(),
            admin_user_id,
            admin_email: admin.email,
            admin_display_name: admin.display_name,
            admin_password_hash,
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

/// Who may sign up by themselves.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum SignupPolicyInput {
    Open,
    InvitationOnly,
    EmailDomain,
}

impl From<SignupPolicyInput> for SignupPolicy {
    fn from(policy: SignupPolicyInput) -> Self {
        match policy {
            SignupPolicyInput::Open => SignupPolicy::Open,
            SignupPolicyInput::InvitationOnly => SignupPolicy::InvitationOnly,
            SignupPolicyInput::EmailDomain => SignupPolicy::EmailDomain,
        }
    }
}

/// The settings to change; what is absent, or already so, stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantSettingsBody {
    #[serde(default)]
    #[schema(required = false, schema_with = api_common::docs::values::tenant_name)]
    name: Option<String>,
    /// `open` (anyone), `invitation_only` (self-signup answers 403) or `email_domain` (only
    /// addresses at `allowed_domains`, compared case-insensitively).
    #[serde(default)]
    signup_policy: Option<SignupPolicyInput>,
    /// The whole list, replacing the current one (at most 100).
    #[serde(default)]
    #[schema(max_items = 100, example = json!(["acme.example"]))]
    allowed_domains: Option<Vec<String>>,
    /// 0 (purge at once) to 3650; 30 unless set.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3650)]
    deletion_grace_days: Option<u32>,
    /// Whether the admin who invited is told when an invitation expires (yes unless set off).
    #[serde(default)]
    invitation_expiry_notices: Option<bool>,
    /// Whether login refuses accounts whose address is not verified (off unless set).
    #[serde(default)]
    require_verified_email: Option<bool>,
}

impl TenantSettingsBody {
    fn parse(self) -> Result<SettingsChanges, ApiError> {
        Ok(SettingsChanges {
            name: self.name.as_deref().map(TenantName::parse).transpose()?,
            signup_policy: self.signup_policy.map(Into::into),
            allowed_domains: self
                .allowed_domains
                .map(|domains| domains.iter().map(|d| MailDomain::parse(d)).collect())
                .transpose()?,
            deletion_grace_days: self.deletion_grace_days,
            invitation_expiry_notices: self.invitation_expiry_notices,
            require_verified_email: self.require_verified_email,
        })
    }
}

/// `PATCH /v1/tenants/{tenant_id}`: a tenant admin changes the tenant's settings.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    request_body = TenantSettingsBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the tenant's settings after the change", body = TenantSettings),
    AdminProblems,
    (status = 404, description = "not the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "changed concurrently too often", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn change_settings(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    let input: TenantSettingsBody = parse_json(&request, &body)?;
    let command = ChangeTenantSettings {
        tenant_id,
        caller_id: caller.0.user_id,
        changes: input.parse()?,
    };
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &body)?;
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
