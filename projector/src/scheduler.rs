//! The scheduler: fires the durable timers of the `timers` read model once their time has
//! passed (ADR 0014). Any number of projector processes run one; each claims due timers with
//! `FOR UPDATE SKIP LOCKED`, so two never take the same timer at once, and a timer only asks
//! its aggregate what is due: the decision (and the stream's optimistic concurrency) makes
//! the effect happen exactly once, however often or late a timer fires, and a process killed
//! mid-way leaves its timers to the next claim.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::{Invitation, User};
use eventstore::{Changes, EventMetadata, EventStore};
use tokio::sync::watch;
use uuid::Uuid;

use crate::projections::timers::{ACCOUNT_PURGE, ACCOUNT_UNLOCK, INVITATION_EXPIRY};

/// The source named in the metadata of events the system appends by itself.
pub const SOURCE: &str = "eventra-scheduler";

pub struct Scheduler {
    pub store: EventStore,
    /// `TIMER_POLL_INTERVAL_MS`, default 1000: how often due timers are looked for.
    pub poll_interval: Duration,
    /// Timers claimed at once.
    pub batch: i64,
    /// `TIMER_LEASE_SECS`, default 30: how long a claimed timer is its scheduler's before
    /// another may take it (longer than a firing takes).
    pub lease: Duration,
    /// `PASSWORD_RESET_TTL_MINUTES`: how long the reset links it sends work.
    pub password_reset_ttl: chrono::Duration,
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

    /// One round: claims the due timers, fires each, works off the queued password reset
    /// requests, and forgets kept links past their expiry. Answers how many timers fired and
    /// requests were handled.
    ///
    /// A claim is a lease, taken in one short statement (`FOR UPDATE SKIP LOCKED` over the
    /// due rows, then a row in `timer_leases`), never a lock held while firing: firing needs
    /// connections of its own, and the `timers` projection must be able to update the rows
    /// meanwhile. A scheduler killed mid-way leaves its leases to run out; the next claim
    /// takes them.
    pub async fn tick(&self) -> anyhow::Result<usize> {
        let pool: &Pool = self.store.pool();
        let due = {
            let client = pool.get().await?;
            client
                .query(
                    "WITH due AS (
                         SELECT t.kind, t.aggregate_id, t.tenant_id, t.last_position FROM timers t
                          WHERE t.due_at <= now()
                            AND NOT EXISTS (SELECT 1 FROM timer_leases l
                                             WHERE l.kind = t.kind AND l.aggregate_id = t.aggregate_id
                                               AND l.leased_until > now())
                          ORDER BY t.due_at LIMIT $1
                          FOR UPDATE OF t SKIP LOCKED),
                     leased AS (
                         INSERT INTO timer_leases (kind, aggregate_id, leased_until)
                         SELECT kind, aggregate_id, now() + $2 * interval '1 millisecond' FROM due
                         ON CONFLICT (kind, aggregate_id) DO UPDATE SET leased_until = excluded.leased_until
                          WHERE timer_leases.leased_until <= now()
                         RETURNING kind, aggregate_id)
                     SELECT due.kind, due.aggregate_id, due.tenant_id, due.last_position
                       FROM due JOIN leased USING (kind, aggregate_id)",
                    &[&self.batch, &(self.lease.as_millis() as f64)],
                )
                .await?
        };
        for row in &due {
            let (kind, aggregate_id, tenant_id, seen): (String, Uuid, Uuid, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let span = tracing::info_span!("timer", %kind, %aggregate_id, %tenant_id);
            let _entered = span.enter();
            let fired = self.fire(&kind, aggregate_id, tenant_id).await;
            let client = pool.get().await?;
            // The row goes (or moves) only as it was claimed: a newer one, set by the
            // projection meanwhile (an invitation sent again), stays.
            match fired {
                Ok(Fired::Done) => {
                    client
                        .execute(
                            "DELETE FROM timers WHERE kind = $1 AND aggregate_id = $2 AND last_position = $3",
                            &[&kind, &aggregate_id, &seen],
                        )
                        .await?;
                }
                Ok(Fired::Later(at)) => {
                    client
                        .execute(
                            "UPDATE timers SET due_at = $4
                              WHERE kind = $1 AND aggregate_id = $2 AND last_position = $3",
                            &[&kind, &aggregate_id, &seen, &at],
                        )
                        .await?;
                }
                Err(error) => {
                    // Left for a later round (a conflict with a concurrent command, a
                    // database hiccup): the lease runs out first, so one bad timer cannot
                    // spin.
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "a timer failed to fire; trying again later"
                    );
                    continue;
                }
            }
            client
                .execute(
                    "DELETE FROM timer_leases WHERE kind = $1 AND aggregate_id = $2",
                    &[&kind, &aggregate_id],
                )
                .await?;
        }
        let resets = crate::resets::work_off(&self.store, self.password_reset_ttl, 100).await?;
        let client = pool.get().await?;
        client
            .execute("DELETE FROM email_secrets WHERE expires_at <= now()", &[])
            .await?;
        client
            .execute(
                "DELETE FROM timer_leases WHERE leased_until < now() - interval '1 hour'",
                &[],
            )
            .await?;
        Ok(due.len() + resets)
    }

    /// Asks the timer's aggregate what is due now, and appends it.
    async fn fire(&self, kind: &str, aggregate_id: Uuid, tenant_id: Uuid) -> anyhow::Result<Fired> {
        match kind {
            INVITATION_EXPIRY => self.expire_invitation(aggregate_id, tenant_id).await,
            ACCOUNT_PURGE => self.purge_account(aggregate_id, tenant_id).await,
            ACCOUNT_UNLOCK => self.unlock_account(aggregate_id, tenant_id).await,
            other => {
                tracing::error!(kind = other, "a timer of an unknown kind is dropped");
                Ok(Fired::Done)
            }
        }
    }

    /// Purges an account whose deletion time has passed, exactly as an erasure does: it
    /// leaves the tenant and its teams, `user.deleted` is appended, the deletion confirmation
    /// is queued while the address can still be read, and the data key is destroyed — all in
    /// one transaction under the tenant's membership lock.
    async fn purge_account(&self, user_id: Uuid, tenant_id: Uuid) -> anyhow::Result<Fired> {
        let transaction = self.store.begin().await?;
        transaction.lock_tenant_membership(tenant_id).await?;
        let reader = transaction.reader();
        let user = reader.load::<User>(user_id).await?;
        let now = Utc::now();
        let events = domain::lifecycle::purge(&user.state, now);
        if events.is_empty() {
            transaction.rollback().await;
            return Ok(match user.state.purge_at {
                Some(at) if user.state.is_present() && at > now => Fired::Later(at),
                _ => Fired::Done,
            });
        }
        let members = reader.members(tenant_id).await?;
        let teams = reader.teams_of(&members, user_id).await?;
        let by = user.state.deletion_scheduled_by.unwrap_or(user_id);
        let mut changes = Changes::new(tenant_id, now).appending(&user, events);
        changes.leave_teams(&teams, user_id, by);
        let metadata = EventMetadata {
            source: SOURCE.to_owned(),
            correlation_id: Some(format!("timer:{ACCOUNT_PURGE}:{user_id}")),
            ..EventMetadata::default()
        };
        let appended = transaction.append(changes, &metadata).await?;
        transaction
            .queue_deletion_confirmation(tenant_id, &user.state, now, &appended)
            .await?;
        transaction.erase_subject(tenant_id, user_id).await?;
        transaction.commit().await?;
        tracing::info!(%user_id, %tenant_id, "account purged; data key destroyed");
        Ok(Fired::Done)
    }

    /// Ends a lock whose time has passed (`user.unlocked` by the system).
    async fn unlock_account(&self, user_id: Uuid, tenant_id: Uuid) -> anyhow::Result<Fired> {
        let transaction = self.store.begin().await?;
        let user = transaction.reader().load::<User>(user_id).await?;
        let now = Utc::now();
        let events = domain::lockout::unlock_due(&user.state, now);
        if events.is_empty() {
            transaction.rollback().await;
            return Ok(match user.state.locked_until {
                Some(until) if until > now && user.state.is_present() => Fired::Later(until),
                _ => Fired::Done,
            });
        }
        let metadata = EventMetadata {
            source: SOURCE.to_owned(),
            correlation_id: Some(format!("timer:{ACCOUNT_UNLOCK}:{user_id}")),
            ..EventMetadata::default()
        };
        transaction
            .append(
                Changes::new(tenant_id, now).appending(&user, events),
                &metadata,
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(%user_id, %tenant_id, "account unlocked");
        Ok(Fired::Done)
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
