//! Mail budgets (ADR 0026): how much mail one inbox and one tenant get in an hour, and the
//! security alerts that travel together when an inbox's budget runs low.
//!
//! - Per inbox (`mailbox`: the address in lower case without a `+tag`), across every tenant:
//!   `EMAIL_RATE_LIMIT_PER_HOUR` notices and `EMAIL_ALERTS_PER_HOUR` security alerts. A job
//!   over its budget waits (`pending`, note `deferred …`) until the hour has room.
//! - Per tenant: `EMAIL_TENANT_LIMIT_PER_HOUR` emails of every kind; notices may spend only
//!   nine tenths of it, so that a flood of notices never holds back an alert.
//! - The alert that takes an inbox's last alert of the hour carries every other alert
//!   waiting for that inbox: one email that says how many, of which kinds, from where. An
//!   alert is never dropped; an inbox never gets more than its budget of alerts an hour.
//!
//! Two workers deciding for one inbox at the same moment can each spend its last unit: the
//! budget can be overrun by at most the number of workers sending at once.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

use super::combined_wording::NAMED_ORGANISATIONS;

/// The hourly budgets.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub notices_per_inbox: i64,
    pub alerts_per_inbox: i64,
    pub per_tenant: i64,
}

/// What a job is about, for its budgets.
pub struct Spender<'a> {
    pub tenant_id: Uuid,
    pub mailbox: Option<&'a str>,
    pub security: bool,
}

/// Why a job cannot go now, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub until: DateTime<Utc>,
    pub note: String,
}

/// When a budget has room again, if it has none now: the oldest of the last `cap` emails it
/// counts leaves the hour. `query` takes its key as `$1` and `cap` as `$2`.
async fn room_at(
    client: &Client,
    query: &str,
    key: &(dyn tokio_postgres::types::ToSql + Sync),
    cap: i64,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    let row = client.query_one(query, &[key, &cap]).await?;
    let count: i64 = row.get(0);
    let oldest: Option<DateTime<Utc>> = row.get(1);
    Ok(match oldest {
        Some(oldest) if count >= cap => Some(oldest + chrono::Duration::hours(1)),
        _ => None,
    })
}

const NOTICES_TO_INBOX: &str = "SELECT count(*), min(sent_at) FROM (
     SELECT sent_at FROM email_jobs
      WHERE mailbox = $1 AND NOT security AND status = 'sent' AND sent_with IS NULL
        AND sent_at > now() - interval '1 hour'
      ORDER BY sent_at DESC LIMIT $2) recent";

const ALERTS_TO_INBOX: &str = "SELECT count(*), min(sent_at) FROM (
     SELECT sent_at FROM email_jobs
      WHERE mailbox = $1 AND security AND status = 'sent' AND sent_with IS NULL
        AND sent_at > now() - interval '1 hour'
      ORDER BY sent_at DESC LIMIT $2) recent";

const SENT_BY_TENANT: &str = "SELECT count(*), min(sent_at) FROM (
     SELECT sent_at FROM email_jobs
      WHERE tenant_id = $1 AND status = 'sent' AND sent_with IS NULL
        AND sent_at > now() - interval '1 hour'
      ORDER BY sent_at DESC LIMIT $2) recent";

impl Budgets {
    /// The tenant's budget for this kind of mail.
    fn tenant_cap(&self, security: bool) -> i64 {
        if security {
            self.per_tenant
        } else {
            self.per_tenant - self.per_tenant / 10
        }
    }

    /// When the job may go, if not now (the later of its inbox's and its tenant's).
    pub async fn wait(
        &self,
        client: &Client,
        job: &Spender<'_>,
    ) -> Result<Option<Wait>, tokio_postgres::Error> {
        let mut wait: Option<Wait> = None;
        if let Some(mailbox) = job.mailbox {
            let (query, cap, what) = if job.security {
                (ALERTS_TO_INBOX, self.alerts_per_inbox, "security alerts")
            } else {
                (NOTICES_TO_INBOX, self.notices_per_inbox, "emails")
            };
            if let Some(until) = room_at(client, query, &mailbox, cap).await? {
                wait = Some(Wait {
                    until,
                    note: format!(
                        "deferred until {until}: the per-recipient limit of {cap} {what} an hour is reached"
                    ),
                });
            }
        }
        let cap = self.tenant_cap(job.security);
        if let Some(until) = room_at(client, SENT_BY_TENANT, &job.tenant_id, cap).await?
            && wait.as_ref().is_none_or(|w| w.until < until)
        {
            wait = Some(Wait {
                until,
                note: format!(
                    "deferred until {until}: the tenant's limit of {cap} emails an hour is reached"
                ),
            });
        }
        Ok(wait)
    }

    /// Whether this alert takes its inbox's last alert of the hour (and so carries the
    /// others waiting).
    pub async fn is_last_alert(
        &self,
        client: &Client,
        mailbox: &str,
    ) -> Result<bool, tokio_postgres::Error> {
        let row = client
            .query_one(
                "SELECT count(*) FROM (
                     SELECT 1 FROM email_jobs
                      WHERE mailbox = $1 AND security AND status = 'sent' AND sent_with IS NULL
                        AND sent_at > now() - interval '1 hour'
                      LIMIT $2) recent",
                &[&mailbox, &self.alerts_per_inbox],
            )
            .await?;
        Ok(row.get::<_, i64>(0) + 1 >= self.alerts_per_inbox)
    }
}

/// The most alerts one email carries.
pub const MAX_CARRIED: i64 = 500;

/// Takes every other alert waiting for `mailbox` into the claim of `carrier` (same claim
/// token and lease), and returns what the carrier's email says about them (`None` when none
/// was waiting). The deletion confirmation is never carried: it is the last email of its own.
pub async fn carry_waiting_alerts(
    client: &Client,
    carrier: Uuid,
    claim_token: Uuid,
    mailbox: &str,
    lease_ms: f64,
) -> Result<Option<Value>, tokio_postgres::Error> {
    let rows = client
        .query(
            "WITH waiting AS (
                 SELECT job_id FROM email_jobs
                  WHERE mailbox = $3 AND status = 'pending' AND security
                    AND template <> 'account_deleted' AND job_id <> $1
                  ORDER BY due_at, job_id LIMIT $5
                  FOR UPDATE SKIP LOCKED)
             UPDATE email_jobs j
                SET status = 'sending', claim_token = $2, sent_with = $1,
                    lease_until = now() + $4 * interval '1 millisecond', updated_at = now()
               FROM waiting WHERE j.job_id = waiting.job_id
             RETURNING j.template, j.variables->>'tenant_name', j.created_at",
            &[&carrier, &claim_token, &mailbox, &lease_ms, &MAX_CARRIED],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut kinds: Vec<(String, u64)> = Vec::new();
    let mut organisations: Vec<String> = Vec::new();
    let mut since: Option<DateTime<Utc>> = None;
    for row in &rows {
        let template: String = row.get(0);
        match kinds.iter_mut().find(|(name, _)| *name == template) {
            Some((_, count)) => *count += 1,
            None => kinds.push((template, 1)),
        }
        if let Some(name) = row.get::<_, Option<String>>(1)
            && !organisations.contains(&name)
        {
            organisations.push(name);
        }
        let created: DateTime<Utc> = row.get(2);
        since = Some(since.map_or(created, |s| s.min(created)));
    }
    let more = organisations.len().saturating_sub(NAMED_ORGANISATIONS);
    organisations.truncate(NAMED_ORGANISATIONS);
    Ok(Some(json!({
        "count": rows.len(),
        "since": since.map(|s| s.format("%Y-%m-%d %H:%M").to_string()),
        "kinds": kinds.iter().map(|(template, count)| json!({"template": template, "count": count})).collect::<Vec<_>>(),
        "organisations": organisations,
        "more_organisations": more,
    })))
}

/// Settles the alerts a carrier took: `sent` with it when its email went, back to `pending`
/// (each on its own again) when it did not.
pub async fn settle_carried(
    client: &impl tokio_postgres::GenericClient,
    carrier: Uuid,
    claim_token: Uuid,
    sent: bool,
) -> Result<u64, tokio_postgres::Error> {
    if sent {
        client
            .execute(
                "UPDATE email_jobs
                    SET status = 'sent', sent_at = now(), note = 'sent with job ' || $1::text,
                        lease_until = NULL, claim_token = NULL, updated_at = now()
                  WHERE sent_with = $1 AND claim_token = $2 AND status = 'sending'",
                &[&carrier, &claim_token],
            )
            .await
    } else {
        client
            .execute(
                "UPDATE email_jobs
                    SET status = 'pending', sent_with = NULL,
                        lease_until = NULL, claim_token = NULL, updated_at = now()
                  WHERE sent_with = $1 AND claim_token = $2 AND status = 'sending'",
                &[&carrier, &claim_token],
            )
            .await
    }
}
