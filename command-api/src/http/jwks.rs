//! `GET /.well-known/jwks.json`: the public keys access tokens are signed with (ADR 0029), so
//! that any service verifies a token without a shared secret. It lists every key that still
//! verifies — the one being signed with, and during a rotation the previous one until the
//! last token it signed has expired.

use actix_web::{HttpResponse, http::header, web};

use crate::app_state::AppState;

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "sessions",
    responses((status = 200, description = "a JWK Set (RFC 7517) of the Ed25519 keys (`kty` OKP, `crv` Ed25519, `alg` EdDSA) whose tokens verify now; a token names its key in the `kid` header. Fetch again when a token names a `kid` not in it.", body = Object, content_type = "application/jwk-set+json")))]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(state.tokens.keys().jwks())
}
