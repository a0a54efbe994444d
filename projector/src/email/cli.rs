//! Operating on the email queue: list jobs, retry dead ones, discard them
//! (`projector email-jobs …`).

use anyhow::bail;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    pub event_id: Uuid,
    pub template: String,
    pub status: String,
    pub attempts: i32,
    pub coalesced_events: i32,
    pub last_error: Option<String>,
    pub note: Option<String>,
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

pub fn parse_status(status: &str) -> anyhow::Result<&'static str> {
    match infra::email_jobs::STATUSES.iter().find(|s| **s == status) {
        Some(status) => Ok(status),
        None => bail!(
            "unknown status {status:?}; one of {}",
            infra::email_jobs::STATUSES.join(", ")
        ),
    }
}

pub async fn list(
    pool: &Pool,
    status: Option<&str>,
    tenant_id: Option<Uuid>,
    limit: i64,
) -> anyhow::Result<Vec<JobView>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT job_id, tenant_id, user_id, event_id, template, status, attempts, coalesced_events,
                    last_error, note, message_id, created_at, due_at, last_attempt_at, sent_at
               FROM email_jobs
              WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR tenant_id = $2)
              ORDER BY created_at, job_id LIMIT $3",
            &[&status, &tenant_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| JobView {
            job_id: row.get(0),
            tenant_id: row.get(1),
            user_id: row.get(2),
            event_id: row.get(3),
            template: row.get(4),
            status: row.get(5),
            attempts: row.get(6),
            coalesced_events: row.get(7),
            last_error: row.get(8),
            note: row.get(9),
            message_id: row.get(10),
            created_at: row.get(11),
            due_at: row.get(12),
            last_attempt_at: row.get(13),
            sent_at: row.get(14),
        })
        .collect())
}

/// Which jobs an operation is for.
pub enum Selection {
    Jobs(Vec<Uuid>),
    AllDead,
}

/// Sends dead jobs again from a fresh attempt budget (their attempt history stays).
/// Returns how many were queued; a job whose recipient was erased cannot be retried.
pub async fn retry(pool: &Pool, selection: &Selection) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    let (ids, all) = split(selection);
    Ok(client
        .execute(
            "UPDATE email_jobs
                SET status = 'pending', due_at = now(), attempts = 0,
                    note = 'retried by an operator', updated_at = now()
              WHERE status = 'dead' AND recipient IS NOT NULL AND ($2 OR job_id = ANY($1))",
            &[&ids, &all],
        )
        .await?)
}

/// Gives up on dead or pending jobs for good.
pub async fn discard(pool: &Pool, selection: &Selection) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    let (ids, all) = split(selection);
    Ok(client
        .execute(
            "UPDATE email_jobs
                SET status = 'discarded', note = 'discarded by an operator', updated_at = now(),
                    recipient = CASE WHEN template = 'account_deleted' THEN NULL ELSE recipient END,
                    variables = CASE WHEN template = 'account_deleted' THEN '{}'::jsonb ELSE variables END
              WHERE (status = 'dead' OR (status = 'pending' AND NOT $2)) AND ($2 OR job_id = ANY($1))",
            &[&ids, &all],
        )
        .await?)
}

fn split(selection: &Selection) -> (Vec<Uuid>, bool) {
    match selection {
        Selection::Jobs(ids) => (ids.clone(), false),
        Selection::AllDead => (Vec::new(), true),
    }
}
