//! `timers`: what must happen when a time passes, as the scheduler (`crate::timers`) claims
//! it. Only the kind and the aggregate are kept: when a timer fires, the aggregate decides
//! what (if anything) is due, so a timer that fires late, twice, or after the aggregate moved
//! on does no harm (ADR 0014).

use domain::{DomainEvent, InvitationEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

/// The timer that expires a pending invitation.
pub const INVITATION_EXPIRY: &str = "invitation.expire";

pub struct Timers;

impl ReadModel for Timers {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let DomainEvent::Invitation {
            invitation_id,
            event: invitation_event,
        } = domain
        else {
            return Ok(());
        };
        let table = "timers";
        match invitation_event {
            InvitationEvent::Created { expires_at, .. }
            | InvitationEvent::Resent { expires_at, .. } => writer.run(
                "INSERT INTO {t} (kind, aggregate_id, tenant_id, due_at, last_position)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (kind, aggregate_id) DO UPDATE
                    SET due_at = excluded.due_at, last_position = excluded.last_position
                  WHERE {t}.last_position < excluded.last_position",
                table,
                params![
                    INVITATION_EXPIRY,
                    invitation_id,
                    event.tenant_id,
                    expires_at,
                    event.position
                ],
            ),
            InvitationEvent::Accepted { .. }
            | InvitationEvent::Revoked { .. }
            | InvitationEvent::Expired { .. } => writer.run(
                "DELETE FROM {t} WHERE kind = $1 AND aggregate_id = $2",
                table,
                params![INVITATION_EXPIRY, invitation_id],
            ),
        }
        Ok(())
    }
}
