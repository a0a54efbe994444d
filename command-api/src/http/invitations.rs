//! `/v1/tenants/{tenant_id}/invitations` (an admin invites, sends again, revokes) and
//! `/v1/invitations/accept` (the holder of the emailed token joins).

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, BodyProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, Idempotency, RequestMeta, parse_json, path_id};
use chrono::{Duration, Utc};
use domain::invitation::{
    DEFAULT_EXPIRES_IN_MINUTES, Invite, MAX_EXPIRES_IN_MINUTES, MIN_EXPIRES_IN_MINUTES, NewAccount,
};
use domain::values::{DisplayName, Email, Password};
use domain::{Actor, DomainError, Invitation, Role};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{IdempotencyKey, hash_password, run, run_for_caller};
use crate::app_state::AppState;
use crate::commands::accept_invitation::{AcceptInvitation, InvitationAccepted};
use crate::commands::invitations::{
    ChangeInvitation, CreateInvitation, InvitationChange, InvitationChanged, InvitationCreated,
    InvitationToken,
};
use crate::commands::links::NewLink;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum InvitedRole {
    Member,
    Admin,
}

/// Who to invite: an address, the role they join with (`member` unless given), the teams
/// they join (existing teams of the tenant), and how long the link works.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitationBody {
    #[schema(schema_with = api_common::docs::values::email)]
    email: String,
    #[serde(default)]
    role: Option<InvitedRole>,
    #[serde(default)]
    #[schema(max_items = 100)]
    team_ids: Vec<Uuid>,
    /// 1 to 43,200 (30 days); 10,080 (7 days) unless given.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 43200)]
    expires_in_minutes: Option<u32>,
}

/// How long a resent link works (the invitation's default unless given).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ResendBody {
    /// 1 to 43,200; 10,080 (7 days) unless given.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 43200)]
    expires_in_minutes: Option<u32>,
}

/// The token from the invitation's link; a password and a display name when the invitation
/// creates an account (an address the tenant does not know yet).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    #[schema(min_length = 1, max_length = 200)]
    token: String,
    #[serde(default)]
    #[schema(required = false, schema_with = api_common::docs::values::password)]
    password: Option<String>,
    #[serde(default)]
    #[schema(required = false, schema_with = api_common::docs::values::display_name)]
    display_name: Option<String>,
}

fn expiry(minutes: Option<u32>) -> Result<chrono::DateTime<Utc>, ApiError> {
    let minutes = minutes.unwrap_or(DEFAULT_EXPIRES_IN_MINUTES);
    if !(MIN_EXPIRES_IN_MINUTES..=MAX_EXPIRES_IN_MINUTES).contains(&minutes) {
        return Err(ApiError::Validation(format!(
            "expires_in_minutes must be between {MIN_EXPIRES_IN_MINUTES} and {MAX_EXPIRES_IN_MINUTES}"
        )));
    }
    Ok(Utc::now() + Duration::minutes(i64::from(minutes)))
}

/// `POST /v1/tenants/{tenant_id}/invitations`: an admin invites an address. The link goes
/// to the address by email only; the answer does not carry it.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/invitations", tag = "invitations",
    request_body = NewInvitationBody,
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 201, description = "invited (`invitation.created`); the email with the one-time link follows", body = InvitationCreated),
    AdminProblems,
    (status = 404, description = "not the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the address is an active member, or has a pending invitation", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn create_invitation(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    let input: NewInvitationBody = parse_json(&request, &body)?;
    let invitation_id = Uuid::now_v7();
    let token = InvitationToken::new(invitation_id)?;
    let command = CreateInvitation {
        invite: Invite {
            invitation_id,
            tenant_id,
            new_user_id: Uuid::now_v7(),
            email: Email::parse(&input.email)?,
            role: match input.role {
                Some(InvitedRole::Admin) => Role::Admin,
                _ => Role::Member,
            },
            team_ids: input.team_ids,
            token_hash: token.hash,
            expires_at: expiry(input.expires_in_minutes)?,
        },
        caller_id: caller.0.user_id,
        token: token.token,
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

/// `POST /v1/tenants/{tenant_id}/invitations/{invitation_id}/resend`: a new link (the old
/// one stops working) and a new expiry, by email.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/invitations/{invitation_id}/resend", tag = "invitations",
    request_body(content = Option<ResendBody>, description = "optional"),
    params(("tenant_id" = Uuid, Path), ("invitation_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "sent again (`invitation.resent`) with the new expiry", body = InvitationChanged),
    AdminProblems,
    (status = 404, description = "no such invitation in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the invitation is accepted, revoked or expired", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn resend_invitation(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let invitation_id = path_id(&path.1, "invitation")?;
    let input: ResendBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResendBody::default()
    } else {
        parse_json(&request, &body)?
    };
    let change = InvitationChange::Resend {
        token: InvitationToken::new(invitation_id)?,
        expires_at: expiry(input.expires_in_minutes)?,
    };
    change_invitation(
        &state,
        &request,
        &caller,
        (tenant_id, invitation_id),
        change,
        &body,
    )
    .await
}

/// `DELETE /v1/tenants/{tenant_id}/invitations/{invitation_id}`: an admin revokes a pending
/// invitation; its link stops working.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/invitations/{invitation_id}", tag = "invitations",
    params(("tenant_id" = Uuid, Path), ("invitation_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "revoked (`invitation.revoked`)", body = InvitationChanged),
    AdminProblems,
    (status = 404, description = "no such invitation in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the invitation is accepted, revoked or expired", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let invitation_id = path_id(&path.1, "invitation")?;
    change_invitation(
        &state,
        &request,
        &caller,
        (tenant_id, invitation_id),
        InvitationChange::Revoke,
        &[],
    )
    .await
}

async fn change_invitation(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    (tenant_id, invitation_id): (Uuid, Uuid),
    change: InvitationChange,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let command = ChangeInvitation {
        tenant_id,
        invitation_id,
        caller_id: caller.0.user_id,
        change,
    };
    run_for_caller(state, request, caller, body, &command).await
}

/// `POST /v1/invitations/accept`: the holder of the token joins the invitation's tenant.
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "invitations",
    request_body = AcceptBody,
    params(IdempotencyKey),
    responses(
    (status = 201, description = "joined (`invitation.accepted`, `user.created` for a new account, `tenant.member_joined`)", body = InvitationAccepted),
    (status = 400, description = "the token is not valid, or a new account lacks a valid password or display name", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the invitation was already accepted, or the address is already an active member", body = Problem, content_type = "application/problem+json"),
    (status = 410, description = "the invitation was revoked or has expired", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: AcceptBody = parse_json(&request, &body)?;
    let invitation = presented_invitation(&state, &input.token).await?;
    // A new account's password is hashed only for a token that opens the invitation, so a
    // guessed token never costs a hash.
    // An imported account's invitation sets its first password: the name is the imported one.
    let new_account = match (&input.password, &input.display_name) {
        (Some(password), name) if name.is_some() || invitation.import_id.is_some() => {
            let email = Email::parse(&invitation.email)?;
            let password = Password::parse(password, &email)?;
            let display_name = name.as_deref().map(DisplayName::parse).transpose()?;
            Some(NewAccount {
                display_name,
                password_hash: hash_password(&state, password).await?,
            })
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::Validation(
                "give both password and display_name (for a new account) or neither".into(),
            ));
        }
    };
    if let Some(tenant_id) = invitation.tenant_id {
        api_common::extract::record_tenant(&request, tenant_id);
    }
    let idempotency = Idempotency::of(&request, None, &body)?;
    let verification = match (invitation.user_id, &new_account) {
        (Some(user_id), Some(_)) if invitation.import_id.is_none() => Some(NewLink::for_user(
            user_id,
            state.settings.email_verification_ttl,
        )?),
        _ => None,
    };
    let command = AcceptInvitation {
        token: input.token,
        new_account,
        verification,
    };
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

/// The invitation the token opens, as it stands; any token that does not open one is the
/// same 400 (a wrong token says nothing about which invitations exist).
async fn presented_invitation(state: &AppState, token: &str) -> Result<Invitation, ApiError> {
    let invitation_id =
        InvitationToken::invitation_of(token).ok_or(DomainError::InvitationTokenInvalid)?;
    let unit = state.store.begin_grouped();
    let invitation = unit.reader().load::<Invitation>(invitation_id).await;
    unit.rollback().await;
    let invitation = invitation?.state;
    domain::invitation::check_token(&invitation, &infra::crypto::token_hash(token), Utc::now())?;
    Ok(invitation)
}
