//! Ed25519 private keys as configured, and the names (`kid`) and JWKs of their public halves.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// An Ed25519 private key. It never prints itself, only its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    public: [u8; 32],
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

/// The PKCS#8 v1 DER prefix of an Ed25519 private key; the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl SigningKey {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let public = ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes();
        let der = [PKCS8_ED25519_PREFIX.as_slice(), seed].concat();
        SigningKey {
            encoding: EncodingKey::from_ed_der(&der),
            public,
            kid: kid_of(&public),
        }
    }

    /// Parses a key as configured: the base64 of a 32-byte seed (`openssl rand -base64 32`)
    /// or an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let seed: Vec<u8> = if let Some(body) = text.strip_prefix("-----BEGIN PRIVATE KEY-----") {
            let body = body
                .split("-----END PRIVATE KEY-----")
                .next()
                .unwrap_or_default();
            let compact: String = body.split_whitespace().collect();
            let der = STANDARD
                .decode(compact)
                .context("the PEM signing key is not valid base64")?;
            der.strip_prefix(PKCS8_ED25519_PREFIX.as_slice())
                .filter(|seed| seed.len() == 32)
                .context(
                    "the PEM signing key is not an Ed25519 private key \
                     (make one with `openssl genpkey -algorithm ed25519`)",
                )?
                .to_vec()
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text))
                .context("the signing key is neither PEM nor base64")?
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| {
            anyhow::anyhow!("the signing key must be 32 bytes (`openssl rand -base64 32`)")
        })?;
        Ok(Self::from_seed(&seed))
    }

    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self::from_seed(&crate::crypto::random_bytes::<32>()?))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact JWS of `claims` with this key, naming `kid` in its header (its own, unless a
    /// test forges another).
    pub fn sign<T: Serialize>(&self, kid: &str, claims: &T) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing a token")
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: base64url of the SHA-256 of its JWK's
/// required members in lexical order.
pub fn kid_of(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public JWK of a key (RFC 8037).
pub fn jwk(kid: &str, public: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(public),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let public: [u8; 32] = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("base64")
            .try_into()
            .expect("32 bytes");
        assert_eq!(
            kid_of(&public),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn a_seed_a_pem_key_and_its_base64_name_the_same_key() {
        // RFC 8037 appendix A.1/A.2: the example private key and its public key.
        let seed = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
        let key = SigningKey::parse(seed).expect("base64url seed");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(key.public_key()),
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        let bytes = URL_SAFE_NO_PAD.decode(seed).expect("base64");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode([PKCS8_ED25519_PREFIX.as_slice(), &bytes].concat())
        );
        assert_eq!(SigningKey::parse(&pem).expect("pem").kid(), key.kid());
        assert_eq!(
            SigningKey::parse(&STANDARD.encode(&bytes))
                .expect("base64")
                .kid(),
            key.kid()
        );
        assert!(format!("{key:?}").contains(key.kid()));
        assert!(!format!("{key:?}").contains(seed));
        for bad in [
            "",
            "c2hvcnQ=",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            assert!(SigningKey::parse(bad).is_err(), "{bad}");
        }
    }
}
