//! Access tokens: JWTs signed with Ed25519 (`EdDSA`) that name their key (`kid`, the RFC 7638
//! thumbprint of the public key). Only the command API holds a private key
//! (`JWT_SIGNING_KEY`); it registers the public half in `token_signing_keys` before it serves
//! and keeps extending how long the key verifies while it runs. Every verifier — both APIs,
//! and any other service through `GET /.well-known/jwks.json` — trusts exactly the keys in
//! that table that are neither past `verify_until` nor retired (ADR 0029).
//!
//! Rotation needs no coordination: an instance started with a new key registers it, the
//! verifiers learn it when they first meet its `kid` (or at the next refresh), and the old
//! key stays valid until the last token it signed has expired, then drops out of the JWKS.

mod key_set;
mod keys;
mod signer;

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;
use uuid::Uuid;

use crate::Secret;
use crate::crypto::{random_token, token_hash};

pub use key_set::{KeySet, REFRESH};
pub use keys::{SigningKey, jwk, kid_of};
pub use signer::{HEARTBEAT, KeyRow, Signer, list, revoke};

/// The channel a new or revoked key is announced on (payload: its `kid`).
pub const KEYS_CHANNEL: &str = "eventra_token_keys";

pub(crate) const ISSUER: &str = "eventra";
pub(crate) const AUDIENCE: &str = "eventra-api";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: Uuid,
    /// The tenant.
    pub tid: Uuid,
    /// The session the token belongs to.
    pub sid: Uuid,
    /// The role when issued; informative only, the authentication state decides.
    pub role: domain::Role,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

/// Issues access tokens (where this process signs) and refresh tokens, and verifies access
/// tokens against the key set.
#[derive(Clone)]
pub struct Tokens {
    signer: Option<Arc<Signer>>,
    keys: Arc<KeySet>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// A refresh token as given to the client, and the hash stored in its place.
pub struct IssuedRefreshToken {
    pub token: Secret<String>,
    pub hash: String,
}

impl Tokens {
    /// Tokens that this process issues with `signer` and verifies with `keys`.
    pub fn issuing(
        signer: Arc<Signer>,
        keys: Arc<KeySet>,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        Tokens {
            signer: Some(signer),
            keys,
            access_ttl,
            refresh_ttl,
        }
    }

    /// Tokens this process only verifies.
    pub fn verifying(keys: Arc<KeySet>) -> Self {
        Tokens {
            signer: None,
            keys,
            access_ttl: Duration::zero(),
            refresh_ttl: Duration::zero(),
        }
    }

    pub fn keys(&self) -> &Arc<KeySet> {
        &self.keys
    }

    /// Whether this process can sign now: its key is registered and trusted (not revoked,
    /// not lapsed because the database was out of reach). Checked before a login or a refresh
    /// changes anything.
    pub fn ready_to_sign(&self, now: DateTime<Utc>) -> anyhow::Result<&Signer> {
        let signer = self
            .signer
            .as_deref()
            .context("this process does not sign access tokens")?;
        if !self.keys.trusts(signer.kid(), now) {
            anyhow::bail!(
                "the token signing key {} is revoked or lapsed; configure a new JWT_SIGNING_KEY",
                signer.kid()
            );
        }
        if signer.registered_until() <= now.timestamp() {
            anyhow::bail!(
                "the token signing key {} is no longer registered (the database has not been \
                 reachable to extend it)",
                signer.kid()
            );
        }
        Ok(signer)
    }

    /// When an access token issued at `now` expires: after `access_ttl`, or sooner when the
    /// signing key's registration ends sooner (its heartbeat has been failing).
    pub fn access_expiry(&self, now: DateTime<Utc>) -> i64 {
        let until = self
            .signer
            .as_ref()
            .map_or(i64::MAX, |signer| signer.registered_until());
        (now + self.access_ttl).timestamp().min(until)
    }

    /// A signed access token, expiring at [`Tokens::access_expiry`].
    pub fn issue_access_token(
        &self,
        user_id: Uuid,
        tenant_id: Uuid,
        session_id: Uuid,
        role: domain::Role,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let signer = self.ready_to_sign(now)?;
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id,
            tid: tenant_id,
            sid: session_id,
            role,
            iat: now.timestamp(),
            exp: self.access_expiry(now),
        };
        signer.key.sign(signer.kid(), &claims)
    }

    pub async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.keys.verify(token).await
    }

    /// A new refresh token for a session: `<session id>.<256 random bits>`.
    pub fn new_refresh_token(&self, session_id: Uuid) -> anyhow::Result<IssuedRefreshToken> {
        let token = format!("{}.{}", session_id.simple(), random_token::<32>()?);
        let hash = token_hash(&token);
        Ok(IssuedRefreshToken {
            token: Secret::new(token),
            hash,
        })
    }
}
