//! What both APIs' OpenAPI documents share: the problem schema, the bearer scheme, and the
//! `/openapi.json` and `/docs` routes (Swagger UI served from the binary, no CDN).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToSchema};

/// An error answer (RFC 9457, `application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, such as `urn:eventra:problem:validation-error`.
    #[schema(example = "urn:eventra:problem:validation-error")]
    pub r#type: String,
    #[schema(example = "Bad Request")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong, for a person to read.
    #[schema(example = "email must be a valid address such as name@example.com")]
    pub detail: String,
}

/// `Authorization: Bearer <access token>` (a JWT from login or refresh).
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /v1/tenants/{tenant_id}/sessions",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operators' METRICS_TOKEN, which only the Prometheus scraper holds",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documents the `429` every rate-limited operation can answer (all but the probes and
/// `/metrics`), with `Retry-After` and the `X-RateLimit-*` headers.
pub struct RateLimited;

impl Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, Header, Ref, ResponseBuilder};
        let seconds = |description: &str| {
            let mut header = Header::new(ObjectBuilder::new().schema_type(Type::Integer));
            header.description = Some(description.to_owned());
            header
        };
        let response = ResponseBuilder::new()
            .description("over the hourly request limit (the tenant's, or the client address's without a token)")
            .content(
                crate::error::PROBLEM_CONTENT_TYPE,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .header("Retry-After", seconds("seconds until the window ends"))
            .header("X-RateLimit-Limit", seconds("requests allowed per hour"))
            .header("X-RateLimit-Remaining", seconds("requests left in this window (0)"))
            .header("X-RateLimit-Reset", seconds("seconds until the window ends"))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if crate::traffic::exempt(path) {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| response.clone().into());
            }
        }
    }
}

/// Serves `GET /openapi.json` and the interactive page at `GET /docs`.
pub fn configure(config: &mut web::ServiceConfig, openapi: utoipa::openapi::OpenApi) {
    config
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::Found()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        )
        .service(utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi));
}

/// Problem answers (`application/problem+json`, the `Problem` schema), by status and
/// description, as an operation's responses.
pub fn problems(
    answers: &[(&str, &str)],
) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    answers
        .iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    crate::error::PROBLEM_CONTENT_TYPE,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build();
            ((*status).to_owned(), response.into())
        })
        .collect()
}

/// What a command with a JSON body can answer besides its own outcomes: a malformed or
/// invalid body (400), one too large (413), one that is not JSON (415), and an idempotency
/// key used before for another request (422).
pub struct BodyProblems;

impl utoipa::IntoResponses for BodyProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problems(&[
            ("400", "malformed body or invalid input"),
            ("413", "body too large"),
            ("415", "not JSON"),
            ("422", "the idempotency key was used for another request"),
        ])
    }
}

/// What a command without a body can answer besides its own outcomes: a malformed
/// `Idempotency-Key` (400) or one used before for another request (422).
pub struct KeyProblems;

impl utoipa::IntoResponses for KeyProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problems(&[
            ("400", "invalid Idempotency-Key"),
            ("422", "the idempotency key was used for another request"),
        ])
    }
}

/// The schema of a text field, made from its value type's rule (`domain::values`), so that
/// the documents say what the parser accepts and the two cannot drift apart.
pub fn text_schema(rule: domain::values::TextRule) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(rule.min_length)
        .max_length(Some(rule.max_length))
        .pattern(rule.pattern)
        .format(
            rule.secret
                .then_some(SchemaFormat::KnownFormat(KnownFormat::Password)),
        )
        .examples([rule.example])
        .build()
}

/// The schemas of the domain's value types, for `#[schema(schema_with = …)]`.
pub mod values {
    use domain::values::{
        DisplayName, Email, Locale, Password, Phone, TeamDescription, TeamName, TenantName,
    };
    use utoipa::openapi::schema::{Object, SchemaType, Type};

    pub fn email() -> Object {
        super::text_schema(Email::RULE)
    }
    pub fn password() -> Object {
        super::text_schema(Password::RULE)
    }
    pub fn display_name() -> Object {
        super::text_schema(DisplayName::RULE)
    }
    pub fn tenant_name() -> Object {
        super::text_schema(TenantName::RULE)
    }
    pub fn team_name() -> Object {
        super::text_schema(TeamName::RULE)
    }
    pub fn team_description() -> Object {
        super::text_schema(TeamDescription::RULE)
    }
    pub fn locale() -> Object {
        super::text_schema(Locale::RULE)
    }
    /// A phone number, or `null` to clear it.
    pub fn phone_or_null() -> Object {
        let mut schema = super::text_schema(Phone::RULE);
        schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
        schema
    }
}

/// What every authenticated read of the query API can answer besides its own outcomes: no
/// valid token (401) and a view that did not reach `X-Min-Position` in time (503).
pub struct ReadProblems;

impl utoipa::IntoResponses for ReadProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problems(&[
            (
                "401",
                "no valid access token, or the session ended or the account is deactivated",
            ),
            ("503", "the view has not reached X-Min-Position in time"),
        ])
    }
}

/// What a paged read for a tenant's admins answers besides its page: a bad filter, date,
/// limit or cursor (400), a caller who is not an admin (403), another tenant (404), and the
/// answers of every read ([`ReadProblems`]).
pub struct AdminListProblems;

impl utoipa::IntoResponses for AdminListProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        let mut answers = problems(&[
            ("400", "invalid filter, date, limit or cursor"),
            ("403", "only the tenant's admins may read this"),
            ("404", "not the caller's tenant"),
        ]);
        answers.extend(ReadProblems::responses());
        answers
    }
}

/// What a command of a tenant's admins answers besides its own outcomes: no valid token
/// (401) and a caller who is not an admin of the tenant (403).
pub struct AdminProblems;

impl utoipa::IntoResponses for AdminProblems {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        problems(&[
            ("401", "no valid access token"),
            ("403", "the caller is not an admin of the tenant"),
        ])
    }
}
