//! The webhook worker: claims due deliveries (`FOR UPDATE SKIP LOCKED`, one webhook's in
//! order: a delivery waits while an earlier one of its webhook is pending or being sent),
//! reads the event from the store as it is now (an erased person's personal fields are
//! gone), signs the CloudEvent the Standard Webhooks way and POSTs it to the address the
//! target guard checked — never to one a name resolves to a moment later.
//!
//! A claim is a lease: a worker that dies mid-send leaves the delivery `sending` until its
//! lease runs out, then any worker sends it again with the same `webhook-id`, so the
//! receiver recognises the repeat. A 2xx ends a delivery; anything else (an error status,
//! a timeout, a refused connection) is retried after a random wait between half and all of
//! min(max, base × 2^(attempt−1)), until the last attempt makes it `dead`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use infra::crypto::KeyRing;
use infra::webhooks::{TargetPolicy, current_secret};
use tokio::sync::watch;
use tracing::Instrument as _;
use uuid::Uuid;

/// How the worker sends.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_WORKERS`, default 2: deliveries sent at once by this process.
    pub workers: usize,
    /// `WEBHOOK_POLL_INTERVAL_MS`, default 250.
    pub poll_interval: Duration,
    /// `WEBHOOK_LEASE_SECS`, default 60 (longer than a send can take).
    pub lease: Duration,
    /// `WEBHOOK_TIMEOUT_MS`, default 10 000: the whole request, connection included.
    pub timeout: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`, default 12: attempts before a delivery is `dead`.
    pub max_attempts: i32,
    /// `WEBHOOK_RETRY_BASE_MS`, default 5 000, and `WEBHOOK_RETRY_MAX_MS`, default 3 600 000.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `WEBHOOK_DISABLE_AFTER_HOURS`, default 24: a webhook whose every attempt has failed
    /// for this long is turned off (`webhook.disabled`) and its tenant's admins are mailed.
    pub disable_after: Duration,
    /// `WEBHOOK_ALLOWED_HOSTS`: private hosts or networks webhooks may call.
    pub targets: TargetPolicy,
    /// `PUBLIC_API_URL`, default `http://127.0.0.1:8080`: the command API's public address,
    /// under which each CloudEvent's `dataschema` is served.
    pub public_api_url: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            workers: 2,
            poll_interval: Duration::from_millis(250),
            lease: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_attempts: 12,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            disable_after: Duration::from_secs(24 * 3600),
            targets: TargetPolicy::default(),
            public_api_url: "http://127.0.0.1:8080".into(),
        }
    }
}

pub struct WebhookWorker {
    pub pool: Pool,
    pub keys: Arc<KeyRing>,
    pub settings: WebhookSettings,
}

/// A claimed delivery.
struct Claimed {
    delivery_id: Uuid,
    webhook_id: Uuid,
    tenant_id: Uuid,
    event_id: Uuid,
    url: String,
    attempts: i32,
    started_at: DateTime<Utc>,
    claim_token: Uuid,
}

/// What became of one attempt.
enum Outcome {
    Delivered(u16),
    Retry(Option<u16>, String),
    Dead(Option<u16>, String),
}

impl WebhookWorker {
    /// Runs `settings.workers` loops until `shutdown`; a send in progress is finished.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        tracing::info!(workers = self.settings.workers, "webhook worker running");
        let (workers, poll) = (self.settings.workers, self.settings.poll_interval);
        crate::work::run(
            self,
            workers,
            poll,
            "webhooks",
            shutdown,
            |worker| async move { worker.once().await },
        )
        .await;
    }

    /// Claims and sends one due delivery; false when none was due.
    pub async fn once(&self) -> Result<bool, anyhow::Error> {
        let Some(delivery) = self.claim().await? else {
            return Ok(false);
        };
        let span = tracing::info_span!("webhook_delivery", delivery_id = %delivery.delivery_id,
            webhook_id = %delivery.webhook_id, tenant_id = %delivery.tenant_id, event_id = %delivery.event_id);
        async {
            let outcome = self.send(&delivery).await?;
            self.finish(&delivery, outcome).await
        }
        .instrument(span)
        .await?;
        Ok(true)
    }

    async fn claim(&self) -> Result<Option<Claimed>, anyhow::Error> {
        let client = self.pool.get().await?;
        let token = Uuid::new_v4();
        let lease_ms = self.settings.lease.as_millis() as f64;
        let row = client
            .query_opt(
                "WITH next AS (
                     SELECT d.delivery_id FROM webhook_deliveries d
                       JOIN rm_webhooks w ON w.webhook_id = d.webhook_id
                      WHERE ((d.status = 'pending' AND d.due_at <= now())
                          OR (d.status = 'sending' AND d.lease_until < now()))
                        AND w.enabled AND NOT w.deleted
                        AND NOT EXISTS (
                            SELECT 1 FROM webhook_deliveries e
                             WHERE e.webhook_id = d.webhook_id AND e.seq < d.seq
                               AND e.status IN ('pending', 'sending'))
                      ORDER BY d.due_at
                      LIMIT 1
                      FOR UPDATE OF d SKIP LOCKED)
                 UPDATE webhook_deliveries d
                    SET status = 'sending', attempts = d.attempts + 1, claim_token = $1,
                        lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
                   FROM next, rm_webhooks w
                  WHERE d.delivery_id = next.delivery_id AND w.webhook_id = d.webhook_id
                 RETURNING d.delivery_id, d.webhook_id, d.tenant_id, d.event_id, w.url, d.attempts, now()",
                &[&token, &lease_ms],
            )
            .await?;
        Ok(row.map(|row| Claimed {
            delivery_id: row.get(0),
            webhook_id: row.get(1),
            tenant_id: row.get(2),
            event_id: row.get(3),
            url: row.get(4),
            attempts: row.get(5),
            started_at: row.get(6),
            claim_token: token,
        }))
    }

    /// One attempt: what the endpoint answered, or why it could not be asked.
    async fn send(&self, delivery: &Claimed) -> Result<Outcome, anyhow::Error> {
        let client = self.pool.get().await?;
        let Some(key) = current_secret(&client, &self.keys, delivery.webhook_id).await? else {
            return Ok(Outcome::Dead(
                None,
                "the webhook has no signing secret".into(),
            ));
        };
        let Some(event) = eventstore::load_event(&client, &self.keys, delivery.event_id).await?
        else {
            return Ok(Outcome::Dead(None, "the event is not in the store".into()));
        };
        drop(client);
        // Checked again now: a name that resolved to a public address at registration may
        // resolve to a private one today. The request goes to the addresses checked here.
        let target = match self.settings.targets.check(&delivery.url).await {
            Ok(target) => target,
            Err(error) => {
                return Ok(Outcome::Dead(None, format!("target refused: {error}")));
            }
        };
        let document = eventstore::public::cloud_event(&event, &self.settings.public_api_url);
        let body = serde_json::to_vec(&document)?;
        let id = delivery.delivery_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = key.sign(&id, timestamp, &body);
        let http = http_client(&target, self.settings.timeout)?;
        let started = Instant::now();
        let answer = http
            .post(target.url.clone())
            .header("content-type", eventstore::public::CONTENT_TYPE)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("user-agent", "Eventra-Webhooks/1")
            .body(body)
            .send()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let last = delivery.attempts >= self.settings.max_attempts;
        Ok(match answer {
            Ok(response) if response.status().is_success() => {
                metrics::histogram!("eventra_webhook_send_seconds", "outcome" => "delivered")
                    .record(elapsed);
                Outcome::Delivered(response.status().as_u16())
            }
            Ok(response) => {
                metrics::histogram!("eventra_webhook_send_seconds", "outcome" => "failed")
                    .record(elapsed);
                let status = response.status().as_u16();
                let why = format!("the endpoint answered {status}");
                if last {
                    Outcome::Dead(Some(status), why)
                } else {
                    Outcome::Retry(Some(status), why)
                }
            }
            Err(error) => {
                metrics::histogram!("eventra_webhook_send_seconds", "outcome" => "failed")
                    .record(elapsed);
                let why = if error.is_timeout() {
                    "the endpoint did not answer in time".to_owned()
                } else if error.is_connect() {
                    "the endpoint refused the connection".to_owned()
                } else {
                    "the request failed".to_owned()
                };
                if last {
                    Outcome::Dead(None, why)
                } else {
                    Outcome::Retry(None, why)
                }
            }
        })
    }

    /// The wait after attempt `attempt` (`crate::work::backoff`).
    fn backoff(&self, attempt: i32) -> chrono::Duration {
        crate::work::backoff(self.settings.retry_base, self.settings.retry_max, attempt)
    }

    /// Records an attempt, if the delivery is still this worker's.
    async fn finish(&self, delivery: &Claimed, outcome: Outcome) -> Result<(), anyhow::Error> {
        let (status, outcome_name, code, error, due_at) = match &outcome {
            Outcome::Delivered(code) => ("delivered", "delivered", Some(*code), None, None),
            Outcome::Retry(code, why) => (
                "pending",
                "retry",
                *code,
                Some(why.as_str()),
                Some(Utc::now() + self.backoff(delivery.attempts)),
            ),
            Outcome::Dead(code, why) => ("dead", "dead", *code, Some(why.as_str()), None),
        };
        let code = code.map(i32::from);
        match &outcome {
            Outcome::Delivered(_) => {
                metrics::counter!("eventra_webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                tracing::info!(attempt = delivery.attempts, "webhook delivered");
            }
            Outcome::Retry(_, why) => {
                metrics::counter!("eventra_webhook_deliveries_total", "outcome" => "retry")
                    .increment(1);
                tracing::warn!(
                    attempt = delivery.attempts,
                    why,
                    ?due_at,
                    "webhook delivery failed; retrying later"
                );
            }
            Outcome::Dead(_, why) => {
                metrics::counter!("eventra_webhook_deliveries_total", "outcome" => "dead")
                    .increment(1);
                tracing::error!(attempt = delivery.attempts, why, "webhook delivery is dead");
            }
        }
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let updated = transaction
            .execute(
                "UPDATE webhook_deliveries
                    SET status = $3, due_at = coalesce($4, due_at), last_status = $5,
                        last_error = $6,
                        delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
                        lease_until = NULL, claim_token = NULL, updated_at = now()
                  WHERE delivery_id = $1 AND claim_token = $2 AND status = 'sending'",
                &[
                    &delivery.delivery_id,
                    &delivery.claim_token,
                    &status,
                    &due_at,
                    &code,
                    &error,
                ],
            )
            .await?;
        if updated == 0 {
            tracing::warn!("the delivery's lease ran out before its attempt was recorded");
            return Ok(());
        }
        transaction
            .execute(
                "INSERT INTO webhook_delivery_attempts (delivery_id, attempt, started_at, outcome, status_code, error)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &delivery.delivery_id,
                    &delivery.attempts,
                    &delivery.started_at,
                    &outcome_name,
                    &code,
                    &error,
                ],
            )
            .await?;
        transaction.commit().await?;
        if let Outcome::Retry(_, why) | Outcome::Dead(_, why) = &outcome {
            super::disable::disable_if_failing_too_long(
                &self.pool,
                &self.keys,
                delivery.webhook_id,
                delivery.tenant_id,
                self.settings.disable_after,
                why,
            )
            .await?;
        }
        Ok(())
    }
}

/// A client that connects only to the checked addresses, follows no redirect (a redirect
/// could lead anywhere), uses no proxy, and gives up after `timeout`.
fn http_client(
    target: &infra::webhooks::Target,
    timeout: Duration,
) -> Result<reqwest::Client, anyhow::Error> {
    // reqwest's rustls brings no crypto provider of its own: ring is the process's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls().clone())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout);
    if target.host.parse::<std::net::IpAddr>().is_err() {
        builder = builder.resolve_to_addrs(&target.host, &target.addresses);
    }
    Ok(builder.build()?)
}

/// TLS for https targets: the public web's roots, through rustls with ring.
fn tls() -> &'static rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
        .with_root_certificates(roots)
        .with_no_client_auth()
    })
}
