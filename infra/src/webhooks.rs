//! Webhooks' infrastructure (ADR 0028): the signing secret (shown once, kept sealed under a
//! master-derived key), the Standard Webhooks signature, and the guard that keeps webhook
//! requests out of private networks (`WEBHOOK_ALLOWED_HOSTS` lets an operator allow some).

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::crypto::{KeyRing, random_bytes};
use crate::net::{Network, is_public};

/// The states of a delivery (`webhook_deliveries.status`).
pub const DELIVERY_STATUSES: [&str; 5] = ["pending", "sending", "delivered", "dead", "discarded"];

/// The prefix of a secret as shown to the tenant: `whsec_<base64 of the key bytes>`.
pub const SECRET_PREFIX: &str = "whsec_";

/// A webhook's signing key.
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// A new random key of 32 bytes.
    pub fn generate() -> Result<SigningKey, crate::crypto::CryptoError> {
        Ok(SigningKey(random_bytes::<32>()?.to_vec()))
    }

    /// As the tenant is shown it, once: `whsec_…`.
    pub fn reveal(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 of HMAC-SHA256 of "{id}.{timestamp}.{body}">`: the `webhook-signature`
    /// header of the Standard Webhooks specification.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// A key from its shown form (for tests and receivers written in Rust).
    pub fn from_revealed(text: &str) -> Option<SigningKey> {
        let encoded = text.strip_prefix(SECRET_PREFIX)?;
        STANDARD.decode(encoded).ok().map(SigningKey)
    }
}

/// What a sealed secret is bound to: its webhook and version.
fn context(webhook_id: Uuid, version: u32) -> Vec<u8> {
    [
        b"webhook-secret/".as_slice(),
        webhook_id.as_bytes(),
        &version.to_be_bytes(),
    ]
    .concat()
}

/// Keeps a webhook's secret of `version`, sealed.
pub async fn keep_secret(
    client: &Client,
    keys: &KeyRing,
    tenant_id: Uuid,
    webhook_id: Uuid,
    version: u32,
    key: &SigningKey,
) -> Result<(), anyhow::Error> {
    let sealed = keys
        .seal_secret(&context(webhook_id, version), &key.0)
        .map_err(|e| anyhow::anyhow!("sealing a webhook secret failed: {e:?}"))?;
    client
        .execute(
            "INSERT INTO webhook_secrets (webhook_id, version, tenant_id, sealed)
             VALUES ($1, $2, $3, $4) ON CONFLICT (webhook_id, version) DO NOTHING",
            &[&webhook_id, &i64::from(version), &tenant_id, &sealed],
        )
        .await?;
    // Only the newest secret signs: older ones are of no more use.
    client
        .execute(
            "DELETE FROM webhook_secrets WHERE webhook_id = $1 AND version < $2",
            &[&webhook_id, &i64::from(version)],
        )
        .await?;
    Ok(())
}

/// The newest secret of a webhook, opened.
pub async fn current_secret(
    client: &Client,
    keys: &KeyRing,
    webhook_id: Uuid,
) -> Result<Option<SigningKey>, anyhow::Error> {
    let row = client
        .query_opt(
            "SELECT version, sealed FROM webhook_secrets WHERE webhook_id = $1
              ORDER BY version DESC LIMIT 1",
            &[&webhook_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let version: i64 = row.get(0);
    let sealed: Vec<u8> = row.get(1);
    let version = u32::try_from(version).unwrap_or(0);
    keys.open_secret(&context(webhook_id, version), &sealed)
        .map(|bytes| Some(SigningKey(bytes)))
        .map_err(|e| anyhow::anyhow!("a webhook secret does not open: {e:?}"))
}

/// Which targets a webhook may call: public addresses, and whatever the operator allows
/// (`WEBHOOK_ALLOWED_HOSTS`: `host`, `host:port` or a CIDR network, comma-separated).
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    hosts: Vec<(String, Option<u16>)>,
    networks: Vec<Network>,
}

/// Why a target may not be called.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("the URL cannot be read: {0}")]
    Malformed(String),
    #[error("http:// is only for hosts the operator allows; use https://")]
    Insecure,
    #[error("{0} does not resolve")]
    Unresolved(String),
    #[error(
        "the target resolves to a private, loopback or link-local address, which webhooks may not call"
    )]
    Private,
}

/// A target that passed the guard: the addresses it was checked at, to connect to exactly
/// those (a name that resolves differently a moment later is not asked again).
#[derive(Debug, Clone)]
pub struct Target {
    pub url: url::Url,
    pub host: String,
    pub addresses: Vec<SocketAddr>,
}

impl TargetPolicy {
    pub fn parse(list: &str) -> Result<TargetPolicy, String> {
        let mut policy = TargetPolicy::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.contains('/') || item.parse::<IpAddr>().is_ok() {
                policy
                    .networks
                    .push(Network::parse(item).map_err(|e| format!("WEBHOOK_ALLOWED_HOSTS: {e}"))?);
                continue;
            }
            let (host, port) = match item.rsplit_once(':') {
                Some((host, port)) => (
                    host,
                    Some(port.parse::<u16>().map_err(|_| {
                        format!("WEBHOOK_ALLOWED_HOSTS: {item:?} has no valid port")
                    })?),
                ),
                None => (item, None),
            };
            policy.hosts.push((host.to_ascii_lowercase(), port));
        }
        Ok(policy)
    }

    fn allows_host(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|(allowed, allowed_port)| {
            allowed == host && allowed_port.is_none_or(|p| p == port)
        })
    }

    fn allows_address(&self, address: IpAddr) -> bool {
        is_public(address) || self.networks.iter().any(|n| n.contains(address))
    }

    /// Resolves the URL's host and checks every address it resolves to: all must be public
    /// or allowed (a name is allowed as a whole by `host` or `host:port`).
    pub async fn check(&self, url: &str) -> Result<Target, TargetError> {
        let parsed = url::Url::parse(url).map_err(|e| TargetError::Malformed(e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| TargetError::Malformed("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| TargetError::Malformed("no port".into()))?;
        let host_allowed = self.allows_host(&host, port);
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(address) => vec![SocketAddr::new(address, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| TargetError::Unresolved(host.clone()))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(TargetError::Unresolved(host));
        }
        let addresses_allowed = addresses
            .iter()
            .all(|a| self.networks.iter().any(|n| n.contains(a.ip())));
        if !host_allowed && !addresses.iter().all(|a| self.allows_address(a.ip())) {
            return Err(TargetError::Private);
        }
        if parsed.scheme() == "http" && !(host_allowed || addresses_allowed) {
            return Err(TargetError::Insecure);
        }
        Ok(Target {
            url: parsed,
            host,
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = SigningKey::from_revealed("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_shows_once_and_reads_back() {
        let key = SigningKey::generate().expect("random");
        let shown = key.reveal();
        assert!(shown.starts_with("whsec_"));
        let read = SigningKey::from_revealed(&shown).expect("key");
        assert_eq!(read.sign("a", 1, b"b"), key.sign("a", 1, b"b"));
    }

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        let none = TargetPolicy::default();
        for url in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/",
            "https://localhost:8443/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            assert_eq!(
                none.check(url).await.map(|_| ()),
                Err(TargetError::Private),
                "{url}"
            );
        }
        assert_eq!(
            none.check("http://93.184.216.34/").await.map(|_| ()),
            Err(TargetError::Insecure)
        );
        assert!(none.check("https://93.184.216.34/x").await.is_ok());
        let loopback = TargetPolicy::parse("127.0.0.0/8, ::1").expect("policy");
        assert!(loopback.check("http://127.0.0.1:9000/hook").await.is_ok());
        assert!(loopback.check("https://[::1]:9000/hook").await.is_ok());
        assert_eq!(
            loopback.check("https://10.0.0.1/").await.map(|_| ()),
            Err(TargetError::Private)
        );
        let named = TargetPolicy::parse("localhost:9000").expect("policy");
        assert!(named.check("http://localhost:9000/hook").await.is_ok());
        assert!(named.check("http://localhost:9001/hook").await.is_err());
        assert!(TargetPolicy::parse("host:notaport").is_err());
        assert!(TargetPolicy::parse("10.0.0.0/99").is_err());
    }
}
