//! `PATCH /v1/me`: the caller's own profile.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{BodyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, Idempotency, RequestMeta, parse_json};
use domain::Actor;
use domain::user::ProfileChanges;
use domain::values::{DisplayName, Locale, Phone};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::{IdempotencyKey, run};
use crate::app_state::AppState;
use crate::commands::UserVersion;
use crate::commands::update_profile::UpdateProfile;

/// A field that may be absent but, when given, not `null`.
fn not_null(field: &str, value: Option<Option<String>>) -> Result<Option<String>, ApiError> {
    match value {
        Some(None) => Err(ApiError::Validation(format!(
            "{field} cannot be null; leave it out to keep it"
        ))),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(super) fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// The profile fields of a body, parsed: absent stays, `null` clears the phone number and
/// is refused for the others.
pub(super) fn profile_changes(
    display_name: Option<Option<String>>,
    phone: Option<Option<String>>,
    locale: Option<Option<String>>,
) -> Result<ProfileChanges, ApiError> {
    Ok(ProfileChanges {
        display_name: not_null("display_name", display_name)?
            .map(|name| DisplayName::parse(&name))
            .transpose()?,
        phone: phone
            .map(|phone| phone.map(|phone| Phone::parse(&phone)).transpose())
            .transpose()?,
        locale: not_null("locale", locale)?
            .map(|locale| Locale::parse(&locale))
            .transpose()?,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateProfileBody {
    /// 1 to 100 characters; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, schema_with = api_common::docs::values::display_name)]
    display_name: Option<Option<String>>,
    /// E.164, such as `+4915112345678`; `null` clears the phone number.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, schema_with = api_common::docs::values::phone_or_null)]
    phone: Option<Option<String>>,
    /// A BCP 47 language tag such as `en` or `de-CH`; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, schema_with = api_common::docs::values::locale)]
    locale: Option<Option<String>>,
}

/// `PATCH /v1/me`: the caller updates their own profile.
#[utoipa::path(patch, path = "/v1/me", tag = "profile",
    request_body = UpdateProfileBody,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "the profile's new version", body = UserVersion),
    (status = 401, description = "no valid access token", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "changed concurrently too often", body = Problem, content_type = "application/problem+json"),
    BodyProblems
))]
pub async fn update_profile(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: UpdateProfileBody = parse_json(&request, &body)?;
    let command = UpdateProfile {
        tenant_id: caller.0.tenant_id,
        user_id: caller.0.user_id,
        changes: profile_changes(input.display_name, input.phone, input.locale)?,
    };
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &body)?;
    let actor = Actor::User {
        user_id: caller.0.user_id,
        tenant_id: caller.0.tenant_id,
        role: caller.0.role,
    };
    let meta = RequestMeta::of(&request);
    run(&state, &meta, actor, idempotency.as_ref(), &command).await
}
