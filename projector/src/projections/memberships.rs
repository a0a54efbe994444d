//! `rm_memberships`: who belongs to which tenant, with what role and status.

use domain::{DomainEvent, UserEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Memberships;

impl ReadModel for Memberships {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let DomainEvent::User {
            user_id,
            event: user_event,
        } = domain
        else {
            return Ok(());
        };
        let table = "rm_memberships";
        let (tenant_id, at, position) = (&event.tenant_id, &event.occurred_at, &event.position);
        match user_event {
            UserEvent::MemberJoined { role, .. } => {
                writer
                    .run(
                        "INSERT INTO {t} (tenant_id, user_id, role, status, joined_at, updated_at, last_position)
                         VALUES ($1, $2, $3, 'active', $4, $4, $5) ON CONFLICT (tenant_id, user_id) DO NOTHING",
                        table,
                        params![tenant_id, user_id, role.as_str(), at, position],
                    );
            }
            UserEvent::MemberRoleChanged { new_role, .. } => {
                writer
                    .run(
                        "UPDATE {t} SET role = $3, updated_at = $4, last_position = $5 WHERE tenant_id = $1 AND user_id = $2",
                        table,
                        params![tenant_id, user_id, new_role.as_str(), at, position],
                    );
            }
            UserEvent::Deactivated { .. } | UserEvent::Reactivated { .. } => {
                let status = if matches!(user_event, UserEvent::Deactivated { .. }) {
                    "deactivated"
                } else {
                    "active"
                };
                writer
                    .run(
                        "UPDATE {t} SET status = $3, updated_at = $4, last_position = $5 WHERE tenant_id = $1 AND user_id = $2",
                        table,
                        params![tenant_id, user_id, status, at, position],
                    );
            }
            UserEvent::MemberRemoved { .. } | UserEvent::Deleted { .. } => {
                writer.run(
                    "DELETE FROM {t} WHERE tenant_id = $1 AND user_id = $2",
                    table,
                    params![tenant_id, user_id],
                );
            }
            UserEvent::DeletionScheduled { .. } | UserEvent::DeletionCancelled { .. } => {
                let status = match user_event {
                    UserEvent::DeletionCancelled { status, .. } => status.as_str(),
                    _ => "deletion_scheduled",
                };
                writer.run(
                    "UPDATE {t} SET status = $3, updated_at = $4, last_position = $5 WHERE tenant_id = $1 AND user_id = $2",
                    table,
                    params![tenant_id, user_id, status, at, position],
                );
            }
            UserEvent::Created { .. }
            | UserEvent::PasswordChanged { .. }
            | UserEvent::PasswordResetRequested { .. }
            | UserEvent::PasswordReset { .. }
            | UserEvent::EmailChangeRequested { .. }
            | UserEvent::EmailVerified { .. }
            | UserEvent::EmailChanged { .. }
            | UserEvent::Locked { .. }
            | UserEvent::Unlocked { .. }
            | UserEvent::LoginFailed { .. }
            | UserEvent::ProfileUpdated { .. }
            | UserEvent::PlatformAdminGranted { .. } => {}
        }
        Ok(())
    }
}
