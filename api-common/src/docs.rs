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
