//! `rm_invitations`: every invitation of a tenant with its status. The invited address is
//! blanked when the account it is for is erased.

use domain::{DomainEvent, InvitationEvent, UserEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Invitations;

impl ReadModel for Invitations {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let table = "rm_invitations";
        let (at, position) = (&event.occurred_at, &event.position);
        let (invitation_id, invitation_event) = match domain {
            DomainEvent::Invitation {
                invitation_id,
                event,
            } => (invitation_id, event),
            DomainEvent::User {
                user_id,
                event: UserEvent::Deleted { .. },
            } => {
                writer.run(
                    "UPDATE {t} SET email = NULL WHERE user_id = $1",
                    table,
                    params![user_id],
                );
                return Ok(());
            }
            _ => return Ok(()),
        };
        let close = |status: &'static str| {
            (
                "UPDATE {t} SET status = $2, closed_at = $3, updated_at = $3, last_position = $4
                  WHERE invitation_id = $1 AND last_position < $4",
                status,
            )
        };
        match invitation_event {
            InvitationEvent::Created {
                tenant_id,
                user_id,
                email,
                role,
                team_ids,
                expires_at,
                invited_by,
                ..
            } => writer.run(
                "INSERT INTO {t} (invitation_id, tenant_id, user_id, email, role, team_ids, status, invited_by,
                                  created_at, expires_at, updated_at, last_position)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $8, $10)
                 ON CONFLICT (invitation_id) DO NOTHING",
                table,
                params![
                    invitation_id,
                    tenant_id,
                    user_id,
                    email,
                    role.as_str(),
                    team_ids.clone(),
                    invited_by,
                    at,
                    expires_at,
                    position
                ],
            ),
            InvitationEvent::Resent { expires_at, .. } => writer.run(
                "UPDATE {t} SET expires_at = $2, sent_count = sent_count + 1, updated_at = $3, last_position = $4
                  WHERE invitation_id = $1 AND last_position < $4",
                table,
                params![invitation_id, expires_at, at, position],
            ),
            InvitationEvent::Accepted { user_id, .. } => writer.run(
                "UPDATE {t} SET status = 'accepted', accepted_by = $2, closed_at = $3, updated_at = $3,
                                last_position = $4
                  WHERE invitation_id = $1 AND last_position < $4",
                table,
                params![invitation_id, user_id, at, position],
            ),
            InvitationEvent::Revoked { .. } | InvitationEvent::Expired { .. } => {
                let (sql, status) = close(
                    if matches!(invitation_event, InvitationEvent::Revoked { .. }) {
                        "revoked"
                    } else {
                        "expired"
                    },
                );
                writer.run(sql, table, params![invitation_id, status, at, position]);
            }
        }
        Ok(())
    }
}
