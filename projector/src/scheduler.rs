//! The scheduler: fires the durable timers of the `timers` read model once their time has
//! passed (ADR 0014). Any number of projector processes run one; each claims due timers with
//! `FOR UPDATE SKIP LOCKED`, so two never take the same timer at once, and a timer only asks
//! its aggregate what is due: the decision (and the stream's optimistic concurrency) makes
//! the effect happen exactly once, however often or late a timer fires, and a process killed
//! mid-way leaves its timers to the next claim.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::Invitation;
use eventstore::{Changes, EventMetadata, EventStore};
use tokio::sync::watch;
use uuid::Uuid;

use crate::projections::timers::INVITATION_EXPIRY;

/// The source named in the metadata of events the system appends by itself.
pub const SOURCE: &str = "eventra-scheduler";

pub struct Scheduler {
    pub store: EventStore,
    /// `TIMER_POLL_INTERVAL_MS`, default 1000: how often due timers are looked for.
    pub poll_interval: Duration,
    /// Timers claimed at once.
    pub batch: i64,
}

/// What became of one fired timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// Done (or nothing left to do): the timer goes.
    Done,
    /// Not due yet after all (the aggregate moved its time on): fire again then.
    Later(DateTime<Utc>),
}

impl Scheduler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            poll_ms = self.poll_interval.as_millis() as u64,
            "scheduler running"
        );
        loop {
            match self.tick().await {
                Ok(fired) if fired > 0 => continue,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "the scheduler's round failed; retrying"
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One round: claims the due timers, fires each, and forgets kept links past their
    /// expiry. Answers how many timers fired.
    pub async fn tick(&self) -> anyhow::Result<usize> {
        let pool: &Pool = self.store.pool();
        let mut client = pool.get().await?;
        let transaction = client.transaction().await?;
        let due = transaction
            .query(
                "SELECT kind, aggregate_id, tenant_id FROM timers
                  WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&self.batch],
            )
            .await?;
        for row in &due {
            let (kind, aggregate_id, tenant_id): (String, Uuid, Uuid) =
                (row.get(0), row.get(1), row.get(2));
            let span = tracing::info_span!("timer", %kind, %aggregate_id, %tenant_id);
            let _entered = span.enter();
            match self.fire(&kind, aggregate_id, tenant_id).await {
                Ok(Fired::Done) => {
                    transaction
                        .execute(
                            "DELETE FROM timers WHERE kind = $1 AND aggregate_id = $2",
                            &[&kind, &aggregate_id],
                        )
                        .await?;
                }
                Ok(Fired::Later(at)) => {
                    transaction
                        .execute(
                            "UPDATE timers SET due_at = $3 WHERE kind = $1 AND aggregate_id = $2",
                            &[&kind, &aggregate_id, &at],
                        )
                        .await?;
                }
                Err(error) => {
                    // Left for a later round (a conflict with a concurrent command, a
                    // database hiccup); pushed back so that one bad timer cannot spin.
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "a timer failed to fire; trying again later"
                    );
                    transaction
                        .execute(
                            "UPDATE timers SET due_at = now() + interval '10 seconds'
                              WHERE kind = $1 AND aggregate_id = $2",
                            &[&kind, &aggregate_id],
                        )
                        .await?;
                }
            }
        }
        transaction
            .execute("DELETE FROM email_secrets WHERE expires_at <= now()", &[])
            .await?;
        transaction.commit().await?;
        Ok(due.len())
    }

    /// Asks the timer's aggregate what is due now, and appends it.
    async fn fire(&self, kind: &str, aggregate_id: Uuid, tenant_id: Uuid) -> anyhow::Result<Fired> {
        match kind {
            INVITATION_EXPIRY => self.expire_invitation(aggregate_id, tenant_id).await,
            other => {
                tracing::error!(kind = other, "a timer of an unknown kind is dropped");
                Ok(Fired::Done)
            }
        }
    }

    async fn expire_invitation(
        &self,
        invitation_id: Uuid,
        tenant_id: Uuid,
    ) -> anyhow::Result<Fired> {
        let transaction = self.store.begin().await?;
        let invitation = transaction
            .reader()
            .load::<Invitation>(invitation_id)
            .await?;
        let now = Utc::now();
        let events = domain::invitation::expire(&invitation.state, now);
        if events.is_empty() {
            transaction.rollback().await;
            return Ok(match invitation.state.expires_at {
                Some(at) if invitation.state.is_open_at(now) => Fired::Later(at),
                _ => Fired::Done,
            });
        }
        let metadata = EventMetadata {
            source: SOURCE.to_owned(),
            correlation_id: Some(format!("timer:{INVITATION_EXPIRY}:{invitation_id}")),
            ..EventMetadata::default()
        };
        let appended = transaction
            .append(
                Changes::new(tenant_id, now).appending(&invitation, events),
                &metadata,
            )
            .await?;
        transaction.commit().await?;
        if let Some(event) = appended.first() {
            tracing::info!(%invitation_id, %tenant_id, event_id = %event.event_id, position = event.position, "invitation expired");
        }
        Ok(Fired::Done)
    }
}
