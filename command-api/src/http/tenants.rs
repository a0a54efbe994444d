//! `POST /v1/tenants`: a tenant and its first admin.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{BodyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Idempotency, RequestMeta, parse_json, record_tenant};
use domain::values::TenantName;
use domain::{Actor, Plan};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::users::NewUserBody;
use super::{IdempotencyKey, hash_password, run};
use crate::app_state::AppState;
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
    let command = SignUpTenant(domain::tenant::SignUpTenant {
        tenant_id,
        name,
        plan: input.plan.into(),
        admin_user_id: Uuid::now_v7(),
        admin_email: admin.email,
        admin_display_name: admin.display_name,
        admin_password_hash,
    });
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
