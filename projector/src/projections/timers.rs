//! `timers`: what must happen when a time passes, as the scheduler (`crate::scheduler`)
//! claims it. Only the kind and the aggregate are kept: when a timer fires, the aggregate
//! decides what (if anything) is due, so a timer that fires late, twice, or after the
//! aggregate moved on does no harm (ADR 0014).

use chrono::{DateTime, Utc};
use domain::{DomainEvent, InvitationEvent, UserEvent};
use eventstore::RecordedEvent;
use uuid::Uuid;

use super::statements::{Param, Writer};
use super::{Applied, Applying, ReadModel};

/// The timer that expires a pending invitation.
pub const INVITATION_EXPIRY: &str = "invitation.expire";
/// The timer that purges an account whose deletion is scheduled.
pub const ACCOUNT_PURGE: &str = "user.purge";
/// The timer that ends a lock after too many wrong passwords.
pub const ACCOUNT_UNLOCK: &str = "user.unlock";

pub struct Timers;

impl ReadModel for Timers {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        match domain {
            DomainEvent::Invitation {
                invitation_id,
                event: invitation_event,
            } => match invitation_event {
                InvitationEvent::Created { expires_at, .. }
                | InvitationEvent::Resent { expires_at, .. } => {
                    set(
                        writer,
                        event,
                        (INVITATION_EXPIRY, *invitation_id),
                        expires_at,
                    );
                }
                InvitationEvent::Accepted { .. }
                | InvitationEvent::Revoked { .. }
                | InvitationEvent::Expired { .. } => {
                    clear(writer, (INVITATION_EXPIRY, *invitation_id));
                }
            },
            DomainEvent::User {
                user_id,
                event: user_event,
            } => match user_event {
                UserEvent::DeletionScheduled { purge_at, .. } => {
                    set(writer, event, (ACCOUNT_PURGE, *user_id), purge_at);
                }
                UserEvent::DeletionCancelled { .. } => {
                    clear(writer, (ACCOUNT_PURGE, *user_id));
                }
                UserEvent::Deleted { .. } => {
                    clear(writer, (ACCOUNT_PURGE, *user_id));
                    clear(writer, (ACCOUNT_UNLOCK, *user_id));
                }
                UserEvent::Locked { until, .. } => {
                    set(writer, event, (ACCOUNT_UNLOCK, *user_id), until);
                }
                UserEvent::Unlocked { .. } => clear(writer, (ACCOUNT_UNLOCK, *user_id)),
                _ => {}
            },
            DomainEvent::Tenant { .. }
            | DomainEvent::Session { .. }
            | DomainEvent::Team { .. }
            | DomainEvent::Import { .. }
            | DomainEvent::Webhook { .. } => {}
        }
        Ok(())
    }
}

fn set(
    writer: &mut Writer<'_>,
    event: &RecordedEvent,
    (kind, aggregate_id): (&'static str, Uuid),
    due_at: &DateTime<Utc>,
) {
    writer.run(
        "INSERT INTO {t} (kind, aggregate_id, tenant_id, due_at, last_position)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind, aggregate_id) DO UPDATE
            SET due_at = excluded.due_at, last_position = excluded.last_position
          WHERE {t}.last_position < excluded.last_position",
        "timers",
        params![kind, aggregate_id, event.tenant_id, due_at, event.position],
    );
}

fn clear(writer: &mut Writer<'_>, (kind, aggregate_id): (&'static str, Uuid)) {
    writer.run(
        "DELETE FROM {t} WHERE kind = $1 AND aggregate_id = $2",
        "timers",
        params![kind, aggregate_id],
    );
}
