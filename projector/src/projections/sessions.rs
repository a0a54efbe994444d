//! `rm_sessions`: each session with its state and why it ended.

use domain::event::RevocationReason;
use domain::{DomainEvent, SessionEvent, UserEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Sessions;

impl ReadModel for Sessions {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let table = "rm_sessions";
        let (at, position) = (&event.occurred_at, &event.position);
        match domain {
            DomainEvent::Session {
                session_id,
                event: session_event,
            } => match session_event {
                SessionEvent::LoggedIn {
                    user_id,
                    tenant_id,
                    expires_at,
                    user_agent,
                    ..
                } => {
                    writer
                        .run(
                            "INSERT INTO {t} (session_id, tenant_id, user_id, created_at, expires_at, last_position, user_agent)
                             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id) DO NOTHING",
                            table,
                            params![session_id, tenant_id, user_id, at, expires_at, position, user_agent.clone()],
                        );
                }
                SessionEvent::Refreshed { expires_at, .. } => {
                    writer
                        .run(
                            "UPDATE {t} SET expires_at = $2, last_refreshed_at = $3, last_position = $4 WHERE session_id = $1",
                            table,
                            params![session_id, expires_at, at, position],
                        );
                }
                SessionEvent::Revoked { reason, .. } => {
                    writer
                        .run(
                            "UPDATE {t} SET revoked_at = coalesce(revoked_at, $2), revoke_reason = coalesce(revoke_reason, $3),
                                            last_position = $4 WHERE session_id = $1",
                            table,
                            params![session_id, at, revocation_reason(*reason), position],
                        );
                }
            },
            DomainEvent::User {
                user_id,
                event:
                    user_event @ (UserEvent::Deactivated { .. }
                    | UserEvent::MemberRemoved { .. }
                    | UserEvent::DeletionScheduled { .. }),
            } => {
                // The authentication state ends them with the event; so does the view.
                let reason = match user_event {
                    UserEvent::Deactivated { .. } => "user_deactivated",
                    UserEvent::MemberRemoved { .. } => "member_removed",
                    _ => "deletion_scheduled",
                };
                writer.run(
                    "UPDATE {t} SET revoked_at = $2, revoke_reason = $4, last_position = $3
                          WHERE user_id = $1 AND revoked_at IS NULL",
                    table,
                    params![user_id, at, position, reason],
                );
            }
            DomainEvent::User {
                user_id,
                event: UserEvent::Deleted { .. },
            } => {
                writer.run(
                    "DELETE FROM {t} WHERE user_id = $1",
                    table,
                    params![user_id],
                );
            }
            _ => {}
        }
        Ok(())
    }
}

pub(super) fn revocation_reason(reason: RevocationReason) -> &'static str {
    reason.as_str()
}
