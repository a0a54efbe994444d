//! What a verifier trusts: the registered keys, in memory, kept current.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{AUDIENCE, AccessClaims, ISSUER, KEYS_CHANNEL, TokenError, jwk, kid_of};

/// How often a verifier reloads the key set even when nothing was announced.
pub const REFRESH: StdDuration = StdDuration::from_secs(30);

/// A verifier meeting a `kid` it does not know reloads the key set at most this often, so
/// that tokens naming made-up keys cost no more than one query a second.
const UNKNOWN_KID_COOLDOWN: StdDuration = StdDuration::from_secs(1);

/// Verified tokens kept, so that a token used again is not verified again (Ed25519
/// verification costs tens of microseconds; a lookup, well under one).
const VERIFIED_CAPACITY: usize = 16_384;

/// A key a verifier accepts, with the instant it stops.
#[derive(Clone)]
struct Trusted {
    decoding: DecodingKey,
    public: [u8; 32],
    verify_until: DateTime<Utc>,
}

/// A token verified before, kept by its exact text.
struct Verified {
    claims: AccessClaims,
    kid: String,
}

/// The keys this process trusts, loaded from `token_signing_keys` and reloaded when a key is
/// announced, every [`REFRESH`], and when a token names an unknown `kid`.
pub struct KeySet {
    pool: Pool,
    keys: RwLock<Arc<HashMap<String, Trusted>>>,
    /// When a token naming an unknown `kid` last made the set reload.
    reloaded_for_unknown: tokio::sync::Mutex<Option<Instant>>,
    verified: Mutex<HashMap<Box<str>, Verified>>,
}

impl KeySet {
    /// Loads the key set from the database.
    pub async fn load(pool: Pool) -> anyhow::Result<Arc<Self>> {
        let set = Arc::new(KeySet {
            pool,
            keys: RwLock::new(Arc::new(HashMap::new())),
            reloaded_for_unknown: tokio::sync::Mutex::new(None),
            verified: Mutex::new(HashMap::new()),
        });
        set.reload().await.context("loading the token keys")?;
        Ok(set)
    }

    /// Keeps the set current for as long as the process runs: reloads on every announcement
    /// on [`KEYS_CHANNEL`] and every [`REFRESH`].
    pub fn watch(self: &Arc<Self>, database_url: String) {
        let set = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let listening = crate::db::listen(&database_url, KEYS_CHANNEL).await;
                if let Err(error) = set.reload().await {
                    tracing::warn!(%error, "reloading the token keys failed");
                }
                let Ok(mut listening) = listening else {
                    tokio::time::sleep(REFRESH).await;
                    continue;
                };
                loop {
                    match tokio::time::timeout(REFRESH, listening.payloads.recv()).await {
                        // The connection failed: listen again.
                        Ok(None) => break,
                        Ok(Some(_)) | Err(_) => {
                            if let Err(error) = set.reload().await {
                                tracing::warn!(%error, "reloading the token keys failed");
                            }
                        }
                    }
                }
                tokio::time::sleep(StdDuration::from_secs(1)).await;
            }
        });
    }

    /// Reads the keys that verify now.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT kid, public_key, verify_until FROM token_signing_keys
                  WHERE verify_until > now() AND retired_at IS NULL",
                &[],
            )
            .await?;
        let mut keys = HashMap::with_capacity(rows.len());
        for row in rows {
            let kid: String = row.get(0);
            let public: Vec<u8> = row.get(1);
            let Ok(public) = <[u8; 32]>::try_from(public.as_slice()) else {
                continue;
            };
            if kid_of(&public) != kid {
                tracing::error!(%kid, "a stored token key does not match its kid; ignored");
                continue;
            }
            keys.insert(
                kid,
                Trusted {
                    decoding: DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))?,
                    public,
                    verify_until: row.get(2),
                },
            );
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    fn current(&self) -> Arc<HashMap<String, Trusted>> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether a key is trusted now (a signer asks this of its own key).
    pub(super) fn trusts(&self, kid: &str, now: DateTime<Utc>) -> bool {
        self.trusted(kid, now).is_some()
    }

    fn trusted(&self, kid: &str, now: DateTime<Utc>) -> Option<Trusted> {
        self.current()
            .get(kid)
            .filter(|key| key.verify_until > now)
            .cloned()
    }

    /// The public keys that verify now, as a JWK Set (RFC 7517).
    pub fn jwks(&self) -> serde_json::Value {
        let now = Utc::now();
        let mut keys: Vec<(&String, &Trusted)> = Vec::new();
        let current = self.current();
        keys.extend(current.iter().filter(|(_, key)| key.verify_until > now));
        keys.sort_by(|a, b| a.0.cmp(b.0));
        serde_json::json!({
            "keys": keys.into_iter().map(|(kid, key)| jwk(kid, &key.public)).collect::<Vec<_>>()
        })
    }

    /// Verifies a token's signature (by the key it names), issuer, audience and expiry.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let now = Utc::now();
        if let Some(known) = self.recall(token, now)? {
            return Ok(known);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = match self.trusted(&kid, now) {
            Some(key) => key,
            None => {
                self.reload_for_unknown_kid().await;
                self.trusted(&kid, now).ok_or(TokenError::Invalid)?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        self.remember(token, &claims, kid);
        Ok(claims)
    }

    /// A token verified before, if its key still verifies; `Expired` once it has expired.
    fn recall(&self, token: &str, now: DateTime<Utc>) -> Result<Option<AccessClaims>, TokenError> {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let Some(known) = verified.get(token) else {
            return Ok(None);
        };
        if known.claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        if self.trusted(&known.kid, now).is_none() {
            return Err(TokenError::Invalid);
        }
        Ok(Some(known.claims.clone()))
    }

    fn remember(&self, token: &str, claims: &AccessClaims, kid: String) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_CAPACITY {
            let now = Utc::now().timestamp();
            verified.retain(|_, known| known.claims.exp > now);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(
            token.into(),
            Verified {
                claims: claims.clone(),
                kid,
            },
        );
    }

    async fn reload_for_unknown_kid(&self) {
        let mut last = self.reloaded_for_unknown.lock().await;
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_COOLDOWN) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "reloading the token keys for an unknown kid failed");
        }
    }
}
