//! The API's one error type and its problem+json answers (RFC 9457).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use domain::DomainError;
use eventstore::StoreError;
use serde_json::json;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    MalformedBody(String),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// What the request names existed but is over for good (a revoked or expired invitation).
    #[error("{0}")]
    Gone(String),
    #[error("the email address is already registered in this tenant")]
    EmailTaken,
    #[error("the resource was changed concurrently too often; retry the request")]
    ConcurrentModification,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The first request with the key succeeded, but its answer carried credentials, which
    /// are never stored.
    #[error(
        "the request with this Idempotency-Key succeeded, but its answer carried credentials, which are never stored; send the request again with a new key"
    )]
    IdempotentAnswerWithheld,
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable(#[source] anyhow::Error),
    /// A read model has not reached the position the client asked to see.
    #[error("{0}")]
    NotCaughtUp(String),
    #[error("an unexpected error occurred")]
    Internal(#[source] anyhow::Error),
    /// The request is larger than the service takes.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many requests for one key (the logins of one address): retry after `retry_after`
    /// seconds.
    #[error("{detail}")]
    RateLimited { detail: String, retry_after: u64 },
}

impl ApiError {
    fn slug(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation-error",
            ApiError::MalformedBody(_) => "malformed-body",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Gone(_) => "gone",
            ApiError::EmailTaken => "email-taken",
            ApiError::ConcurrentModification => "concurrent-modification",
            ApiError::IdempotencyKeyReused => "idempotency-key-reused",
            ApiError::IdempotentAnswerWithheld => "idempotent-answer-withheld",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NotCaughtUp(_) => "not-caught-up",
            ApiError::Internal(_) => "internal-error",
            ApiError::RateLimited { .. } => "rate-limited",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }
}

/// A problem+json body.
pub fn problem(status: StatusCode, slug: &str, detail: &str) -> serde_json::Value {
    json!({
        "type": format!("urn:eventra:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::EmailTaken | ApiError::ConcurrentModification => {
                StatusCode::CONFLICT
            }
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::IdempotentAnswerWithheld => StatusCode::CONFLICT,
            ApiError::Unavailable(_) | ApiError::NotCaughtUp(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let status = self.status_code();
        match self {
            ApiError::Internal(error) | ApiError::Unavailable(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    status = status.as_u16(),
                    "request failed"
                );
            }
            _ => tracing::info!(
                problem = self.slug(),
                status = status.as_u16(),
                "request refused"
            ),
        }
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_CONTENT_TYPE);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::RateLimited { retry_after, .. } = self {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        response.json(problem(status, self.slug(), &self.to_string()))
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let detail = error.to_string();
        match error {
            DomainError::Invalid(_)
            | DomainError::InvitationTokenInvalid
            | DomainError::LinkInvalid => ApiError::Validation(detail),
            DomainError::TenantNotFound
            | DomainError::UserNotFound
            | DomainError::SessionNotFound
            | DomainError::TeamNotFound
            | DomainError::WebhookNotFound
            | DomainError::NotInTeam
            | DomainError::InvitationNotFound
            | DomainError::ImportNotFound => ApiError::NotFound(detail),
            DomainError::TenantAlreadyExists
            | DomainError::UserAlreadyExists
            | DomainError::LastActiveAdmin
            | DomainError::TeamAlreadyExists
            | DomainError::WebhookAlreadyExists
            | DomainError::AlreadyMember
            | DomainError::InvitationPending
            | DomainError::InvitationClosed(_)
            | DomainError::ImportClosed(_)
            | DomainError::DeletionAlreadyScheduled
            | DomainError::DeletionNotScheduled => ApiError::Conflict(detail),
            DomainError::EmailTaken => ApiError::EmailTaken,
            DomainError::WrongPassword => ApiError::Forbidden(detail),
            DomainError::InvitationGone(_) | DomainError::LinkGone(_) => ApiError::Gone(detail),
            DomainError::NotAllowed | DomainError::SignupRefused(_) => ApiError::Forbidden(detail),
            DomainError::SessionEnded => ApiError::Unauthenticated(detail),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => ApiError::ConcurrentModification,
            StoreError::Duplicate { .. } => ApiError::EmailTaken,
            StoreError::SubjectErased => ApiError::NotFound("the user does not exist".into()),
            error if error.is_unavailable() => ApiError::Unavailable(error.into()),
            error => ApiError::Internal(error.into()),
        }
    }
}

/// Turns every error response that is not yet problem+json (unknown route, wrong method,
/// oversized payload, errors raised by actix itself) into one, so clients see one format.
pub fn render_problem<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this method is not allowed on this resource",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "the request body is too large"),
        StatusCode::BAD_REQUEST => ("bad-request", "the request is malformed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported-media-type", "unsupported content type")
        }
        s if s.is_server_error() => ("internal-error", "an unexpected error occurred"),
        _ => ("error", "the request failed"),
    };
    let body = problem(status, slug, detail).to_string();
    let (request, mut response) = response.into_parts();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    let response = response.set_body(body).map_into_boxed_body();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, response).map_into_right_body(),
    ))
}
