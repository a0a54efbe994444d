//! The email worker: claims due jobs (`FOR UPDATE SKIP LOCKED`, so several workers in one
//! or many processes never take the same job), renders and sends them, and records each
//! attempt.
//!
//! A claim is a lease: a worker that dies mid-send leaves the job `sending` until its lease
//! runs out, then any worker claims it again and sends it with the same `Message-ID`. The
//! one window SMTP leaves: the server accepted the message and the worker died before
//! recording it; the job is sent again, recognisably (same `Message-ID`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use infra::crypto::KeyRing;
use infra::email_jobs::{self, Template};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use serde_json::Value;
use tokio::sync::watch;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::email::budget::{self, Budgets, Spender};
use crate::email::templates::render;
use crate::email::transport::{Mailer, SendError};

/// How the worker sends.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `EMAIL_FROM`, default `Eventra <no-reply@eventra.localhost>`.
    pub from: String,
    /// `EMAIL_WORKERS`, default 2: jobs sent at once by this process.
    pub workers: usize,
    /// `EMAIL_POLL_INTERVAL_MS`, default 250: how often an idle worker looks for due jobs.
    pub poll_interval: Duration,
    /// `EMAIL_LEASE_SECS`, default 60: how long a claimed job is the claimer's before
    /// another worker may take it (longer than an SMTP send can take).
    pub lease: Duration,
    /// `EMAIL_MAX_ATTEMPTS`, default 8: attempts before a transient failure becomes `dead`.
    pub max_attempts: i32,
    /// `EMAIL_RETRY_BASE_MS`, default 30 000, and `EMAIL_RETRY_MAX_MS`, default 3 600 000:
    /// the wait after attempt n is a random time between half and all of
    /// min(max, base × 2^(n-1)).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `EMAIL_RATE_LIMIT_PER_HOUR`, default 10: emails other than security alerts to one
    /// inbox (across tenants) per hour; more wait until the hour allows them.
    pub rate_limit_per_hour: i64,
    /// `EMAIL_ALERTS_PER_HOUR`, default 5: security alerts to one inbox per hour; the last
    /// one of the hour carries every other alert waiting, the rest wait for room.
    pub alerts_per_hour: i64,
    /// `EMAIL_TENANT_LIMIT_PER_HOUR`, default 10 000: emails of one tenant per hour (notices
    /// may spend nine tenths of it).
    pub tenant_limit_per_hour: i64,
    /// `PUBLIC_URL`, default `http://127.0.0.1:8080`: where people open emailed links
    /// (`{PUBLIC_URL}/invitations/accept?token=…`).
    pub public_url: String,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            from: "Eventra <no-reply@eventra.localhost>".into(),
            workers: 2,
            poll_interval: Duration::from_millis(250),
            lease: Duration::from_secs(60),
            max_attempts: 8,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            rate_limit_per_hour: 10,
            alerts_per_hour: 5,
            tenant_limit_per_hour: 10_000,
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

pub struct EmailWorker {
    pub pool: Pool,
    pub mailer: Arc<Mailer>,
    pub settings: WorkerSettings,
    /// Opens the one-time links kept for emails (`email_secrets`).
    pub keys: Arc<KeyRing>,
}

/// A claimed job.
struct Claimed {
    job_id: Uuid,
    event_id: Uuid,
    tenant_id: Uuid,
    template: String,
    security: bool,
    recipient: Option<String>,
    /// The inbox the recipient's address reaches (for the budgets).
    mailbox: Option<String>,
    variables: Value,
    attempts: i32,
    message_id: String,
    started_at: DateTime<Utc>,
    claim_token: Uuid,
    /// Whether other alerts ride with this job's email.
    carrying: bool,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Retry,
    Dead,
    Deferred,
    /// Not sent and never will be (its link is no longer valid).
    Suppressed,
}

impl EmailWorker {
    /// Runs `settings.workers` loops until `shutdown`; a send in progress is finished.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        tracing::info!(mailer = %self.mailer.describe(), workers = self.settings.workers, "email worker running");
        let (workers, poll) = (self.settings.workers, self.settings.poll_interval);
        crate::work::run(
            self,
            workers,
            poll,
            "email",
            shutdown,
            |worker| async move { worker.once().await },
        )
        .await;
    }

    /// Claims and handles one due job; false when none was due.
    pub async fn once(&self) -> Result<bool, anyhow::Error> {
        let Some(job) = self.claim().await? else {
            return Ok(false);
        };
        let span =
            tracing::info_span!("email_job", job_id = %job.job_id, tenant_id = %job.tenant_id);
        self.handle(job).instrument(span).await?;
        Ok(true)
    }

    async fn claim(&self) -> Result<Option<Claimed>, anyhow::Error> {
        let client = self.pool.get().await?;
        let token = Uuid::new_v4();
        let lease_ms = self.settings.lease.as_millis() as f64;
        let row = client
            .query_opt(
                "WITH next AS (
                     SELECT job_id FROM email_jobs
                      WHERE (status = 'pending' AND due_at <= now())
                         OR (status = 'sending' AND lease_until < now())
                      ORDER BY due_at
                      LIMIT 1
                      FOR UPDATE SKIP LOCKED)
                 UPDATE email_jobs j
                    SET status = 'sending', attempts = j.attempts + 1, claim_token = $1,
                        lease_until = now() + $2 * interval '1 millisecond',
                        last_attempt_at = now(), updated_at = now(), sent_with = NULL
                   FROM next WHERE j.job_id = next.job_id
                 RETURNING j.job_id, j.tenant_id, j.template, j.security, j.recipient, j.variables,
                           j.attempts, j.message_id, j.last_attempt_at, j.event_id, j.mailbox",
                &[&token, &lease_ms],
            )
            .await?;
        Ok(row.map(|row| Claimed {
            job_id: row.get(0),
            tenant_id: row.get(1),
            template: row.get(2),
            security: row.get(3),
            recipient: row.get(4),
            variables: row.get(5),
            attempts: row.get(6),
            message_id: row.get(7),
            started_at: row.get(8),
            claim_token: token,
            event_id: row.get(9),
            mailbox: row.get(10),
            carrying: false,
        }))
    }

    async fn handle(&self, mut job: Claimed) -> Result<(), anyhow::Error> {
        let budgets = self.budgets();
        let spender = Spender {
            tenant_id: job.tenant_id,
            mailbox: job.mailbox.as_deref(),
            security: job.security,
        };
        if let Some(wait) = budgets.wait(&**self.pool.get().await?, &spender).await? {
            metrics::counter!("eventra_email_deferred_total").increment(1);
            tracing::info!(job_id = %job.job_id, tenant_id = %job.tenant_id, until = %wait.until, security = job.security, "email deferred by a mail budget");
            return self
                .finish(
                    &job,
                    Outcome::Deferred,
                    Some(wait.until),
                    None,
                    Some(&wait.note),
                )
                .await;
        }
        let mut carried = None;
        if job.security
            && job.template != Template::AccountDeleted.as_str()
            && let Some(mailbox) = job.mailbox.as_deref()
        {
            let client = self.pool.get().await?;
            if budgets.is_last_alert(&client, mailbox).await? {
                let lease_ms = self.settings.lease.as_millis() as f64;
                carried = budget::carry_waiting_alerts(
                    &client,
                    job.job_id,
                    job.claim_token,
                    mailbox,
                    lease_ms,
                )
                .await?;
                job.carrying = carried.is_some();
                if let Some(combined) = &carried {
                    metrics::counter!("eventra_email_alerts_combined_total")
                        .increment(combined["count"].as_u64().unwrap_or(0));
                    tracing::info!(job_id = %job.job_id, tenant_id = %job.tenant_id, carried = %combined["count"], "security alert carries the alerts waiting for its inbox");
                }
            }
        }
        let mut variables = job.variables.clone();
        if let (Some(combined), Some(variables)) = (carried, variables.as_object_mut()) {
            variables.insert("combined".into(), combined);
        }
        let template = Template::from_name(&job.template);
        if let Some(purpose) = template.and_then(|t| t.link()) {
            let client = self.pool.get().await?;
            match email_jobs::open_secret(&client, &self.keys, job.event_id).await? {
                Some(token) => {
                    let link = format!(
                        "{}{}?token={token}",
                        self.settings.public_url.trim_end_matches('/'),
                        purpose.path()
                    );
                    if let Some(variables) = variables.as_object_mut() {
                        variables.insert("link".into(), Value::String(link));
                    }
                }
                None if !template.is_some_and(|t| t.needs_link()) => {}
                None => {
                    tracing::info!(job_id = %job.job_id, tenant_id = %job.tenant_id, template = %job.template, "link email suppressed: its link was replaced, used or has expired");
                    let note = "not sent: the link was replaced, used, revoked or has expired";
                    return self
                        .finish(&job, Outcome::Suppressed, None, None, Some(note))
                        .await;
                }
            }
        }
        let started = Instant::now();
        let result = match self.message(&job, &variables) {
            Ok(message) => self.mailer.send(job.job_id, &message).await,
            Err(error) => Err(error),
        };
        let elapsed = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                metrics::histogram!("eventra_email_send_seconds", "outcome" => "sent")
                    .record(elapsed);
                metrics::counter!("eventra_email_sent_total", "template" => template_label(&job.template)).increment(1);
                tracing::info!(job_id = %job.job_id, tenant_id = %job.tenant_id, template = %job.template, attempt = job.attempts, "email sent");
                self.finish(&job, Outcome::Sent, None, None, None).await
            }
            Err(SendError::Permanent(error)) => {
                metrics::histogram!("eventra_email_send_seconds", "outcome" => "failed")
                    .record(elapsed);
                metrics::counter!("eventra_email_dead_total").increment(1);
                tracing::error!(job_id = %job.job_id, tenant_id = %job.tenant_id, template = %job.template, error = %super::transport::for_logs(&error), "email failed permanently; the job is dead");
                self.finish(&job, Outcome::Dead, None, Some(&error), None)
                    .await
            }
            Err(SendError::Transient(error)) => {
                metrics::histogram!("eventra_email_send_seconds", "outcome" => "failed")
                    .record(elapsed);
                if job.attempts >= self.settings.max_attempts {
                    metrics::counter!("eventra_email_dead_total").increment(1);
                    tracing::error!(job_id = %job.job_id, tenant_id = %job.tenant_id, attempts = job.attempts, error = %super::transport::for_logs(&error), "email failed on its last attempt; the job is dead");
                    self.finish(&job, Outcome::Dead, None, Some(&error), None)
                        .await
                } else {
                    metrics::counter!("eventra_email_retries_total").increment(1);
                    let retry_at = Utc::now() + self.backoff(job.attempts);
                    tracing::warn!(job_id = %job.job_id, tenant_id = %job.tenant_id, attempt = job.attempts, %retry_at, error = %super::transport::for_logs(&error), "email failed; retrying later");
                    self.finish(&job, Outcome::Retry, Some(retry_at), Some(&error), None)
                        .await
                }
            }
        }
    }

    /// The wait after attempt `attempt` (`crate::work::backoff`).
    fn backoff(&self, attempt: i32) -> chrono::Duration {
        crate::work::backoff(self.settings.retry_base, self.settings.retry_max, attempt)
    }

    fn budgets(&self) -> Budgets {
        Budgets {
            notices_per_inbox: self.settings.rate_limit_per_hour,
            alerts_per_inbox: self.settings.alerts_per_hour,
            per_tenant: self.settings.tenant_limit_per_hour,
        }
    }

    /// The message of a job, rendered from `variables` (the job's, with any link opened for
    /// this attempt only: the link is never written back).
    fn message(&self, job: &Claimed, variables: &Value) -> Result<Message, SendError> {
        let template = Template::from_name(&job.template)
            .ok_or_else(|| SendError::Permanent(format!("unknown template {}", job.template)))?;
        let recipient = job
            .recipient
            .as_deref()
            .ok_or_else(|| SendError::Permanent("the recipient was erased".into()))?;
        let to: Mailbox = recipient.parse().map_err(|e| {
            SendError::Permanent(super::transport::without_addresses(&format!(
                "the recipient address cannot be mailed: {e}"
            )))
        })?;
        let from: Mailbox = self
            .settings
            .from
            .parse()
            .map_err(|e| SendError::Permanent(format!("EMAIL_FROM is not an address: {e}")))?;
        let rendered = render(template, variables);
        Message::builder()
            .from(from)
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(job.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| SendError::Permanent(format!("the message cannot be built: {e}")))
    }

    /// Records an attempt's outcome, if the job is still this worker's (a lease that ran
    /// out may have passed it to another worker).
    async fn finish(
        &self,
        job: &Claimed,
        outcome: Outcome,
        due_at: Option<DateTime<Utc>>,
        error: Option<&str>,
        note: Option<&str>,
    ) -> Result<(), anyhow::Error> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let (status, outcome_name) = match outcome {
            Outcome::Sent => ("sent", "sent"),
            Outcome::Retry => ("pending", "retry"),
            Outcome::Dead => ("dead", "dead"),
            Outcome::Deferred => ("pending", "deferred"),
            Outcome::Suppressed => ("suppressed", "suppressed"),
        };
        // The deletion confirmation gives up the address once it is finished with.
        let forget = job.template == Template::AccountDeleted.as_str()
            && matches!(outcome, Outcome::Sent | Outcome::Dead);
        let updated = transaction
            .execute(
                "UPDATE email_jobs
                    SET status = $3,
                        due_at = coalesce($4, due_at),
                        attempts = CASE WHEN $5 THEN attempts - 1 ELSE attempts END,
                        last_error = CASE WHEN $8 THEN NULL WHEN $6::text IS NULL THEN last_error ELSE $6 END,
                        note = coalesce($7, note),
                        sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END,
                        recipient = CASE WHEN $8 THEN NULL ELSE recipient END,
                        variables = CASE WHEN $8 THEN '{}'::jsonb ELSE variables END,
                        lease_until = NULL, claim_token = NULL, updated_at = now()
                  WHERE job_id = $1 AND claim_token = $2 AND status = 'sending'",
                &[
                    &job.job_id,
                    &job.claim_token,
                    &status,
                    &due_at,
                    &(outcome == Outcome::Deferred),
                    &error,
                    &note,
                    &forget,
                ],
            )
            .await?;
        if updated == 0 {
            tracing::warn!(job_id = %job.job_id, "the job's lease ran out before its attempt was recorded");
            return Ok(());
        }
        transaction
            .execute(
                "INSERT INTO email_job_attempts (job_id, attempt, started_at, outcome, error)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &job.job_id,
                    &job.attempts,
                    &job.started_at,
                    &outcome_name,
                    &if forget { None } else { error },
                ],
            )
            .await?;
        // The alerts that rode with this one went with it, or wait again on their own.
        if job.carrying {
            budget::settle_carried(
                &*transaction,
                job.job_id,
                job.claim_token,
                outcome == Outcome::Sent,
            )
            .await?;
        }
        // A link's token lives only until its email is finished with.
        if Template::from_name(&job.template).is_some_and(|t| t.link().is_some())
            && matches!(outcome, Outcome::Sent | Outcome::Dead | Outcome::Suppressed)
        {
            transaction
                .execute(
                    "DELETE FROM email_secrets WHERE event_id = $1",
                    &[&job.event_id],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

/// Template names as a bounded label set.
fn template_label(name: &str) -> &'static str {
    Template::from_name(name).map_or("unknown", |t| t.as_str())
}
