//! `GET /v1/tenants/{tenant_id}`: the tenant and its settings, for its admins.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{Problem, ReadProblems};
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;

use super::{MinPosition, answer, database, read_view, require_admin};

/// A tenant as the read model holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    tenant_id: Uuid,
    #[schema(example = "Acme")]
    name: String,
    #[schema(example = "standard")]
    plan: String,
    /// `open`, `invitation_only` or `email_domain`.
    #[schema(example = "open")]
    signup_policy: String,
    allowed_domains: Vec<String>,
    deletion_grace_days: i32,
    /// Whether the admin who invited is told when an invitation expires.
    invitation_expiry_notices: bool,
    /// Whether login refuses accounts whose address is not verified.
    require_verified_email: bool,
    created_at: DateTime<Utc>,
    updated_at: Option<DateTime<Utc>>,
}

/// `GET /v1/tenants/{tenant_id}`: the tenant's name, plan and settings (admins).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "tenants", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), MinPosition),
    responses(
    (status = 200, description = "the tenant and its settings (admins)", body = TenantView, headers(("X-Projection-Position" = i64, description = "the position of the view the answer reflects"))),
    (status = 400, description = "malformed X-Min-Position", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "only admins see the tenant's settings", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "not the caller's tenant", body = Problem, content_type = "application/problem+json"),
    ReadProblems
))]
pub async fn tenant(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let (row, position) = read_view(&state, &request, "tenants", async |client| {
        client
            .query_opt(
                "SELECT tenant_id, name, plan, signup_policy, allowed_domains, deletion_grace_days,
                        created_at, updated_at, invitation_expiry_notices, require_verified_email
                   FROM rm_tenants WHERE tenant_id = $1",
                &[&tenant_id],
            )
            .await
            .map_err(database)
    })
    .await?;
    let row = row.ok_or_else(|| ApiError::NotFound("the tenant is not projected yet".into()))?;
    Ok(answer(
        TenantView {
            tenant_id: row.get(0),
            name: row.get(1),
            plan: row.get(2),
            signup_policy: row.get(3),
            allowed_domains: row.get(4),
            deletion_grace_days: row.get(5),
            invitation_expiry_notices: row.get(8),
            require_verified_email: row.get(9),
            created_at: row.get(6),
            updated_at: row.get(7),
        },
        position,
    ))
}
