//! `rm_users`: one row per user with their profile, role and status (personal data, deleted
//! with the user).

use domain::event::FieldChange;
use domain::{DomainEvent, UserEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Users;

impl ReadModel for Users {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let DomainEvent::User {
            user_id,
            event: user_event,
        } = domain
        else {
            return Ok(());
        };
        let table = "rm_users";
        let (at, version, position) = (&event.occurred_at, &event.sequence, &event.position);
        match user_event {
            UserEvent::Created {
                tenant_id,
                email,
                display_name,
                ..
            } => {
                writer
                    .run(
                        "INSERT INTO {t} (user_id, tenant_id, email, display_name, status, created_at, updated_at,
                                          version, last_position)
                         VALUES ($1, $2, $3, $4, 'active', $5, $5, $6, $7) ON CONFLICT (user_id) DO NOTHING",
                        table,
                        params![user_id, tenant_id, email, display_name, at, version, position],
                    );
            }
            UserEvent::MemberJoined { role, .. }
            | UserEvent::MemberRoleChanged { new_role: role, .. } => {
                // Joining again after a removal (an accepted invitation) makes the account
                // one of the tenant's users again.
                writer
                    .run(
                        "UPDATE {t} SET role = $2, status = CASE WHEN status = 'removed' THEN 'active' ELSE status END,
                                        updated_at = $3, version = $4, last_position = $5 WHERE user_id = $1",
                        table,
                        params![user_id, role.as_str(), at, version, position],
                    );
            }
            UserEvent::ProfileUpdated { .. } => {
                let Some(delta) = user_event.profile_delta() else {
                    return Ok(());
                };
                let (clear_phone, phone) = match delta.phone {
                    FieldChange::Keep => (false, None),
                    FieldChange::Set(phone) => (false, Some(phone)),
                    FieldChange::Clear => (true, None),
                };
                writer.run(
                    "UPDATE {t} SET display_name = coalesce($2, display_name),
                                        phone = CASE WHEN $3 THEN NULL ELSE coalesce($4, phone) END,
                                        locale = coalesce($5, locale),
                                        updated_at = $6, version = $7, last_position = $8
                          WHERE user_id = $1",
                    table,
                    params![
                        user_id,
                        delta.display_name.map(str::to_owned),
                        clear_phone,
                        phone.map(str::to_owned),
                        delta.locale.map(str::to_owned),
                        at,
                        version,
                        position
                    ],
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
                        "UPDATE {t} SET status = $2, updated_at = $3, version = $4, last_position = $5 WHERE user_id = $1",
                        table,
                        params![user_id, status, at, version, position],
                    );
            }
            UserEvent::Deleted { .. } => {
                // Erasure: nothing of the person stays in the read model.
                writer.run(
                    "DELETE FROM {t} WHERE user_id = $1",
                    table,
                    params![user_id],
                );
            }
            UserEvent::MemberRemoved { .. } => {
                // Kept (locked) until the account's deletion; no longer a member.
                writer.run(
                    "UPDATE {t} SET role = NULL, status = 'removed', updated_at = $2, version = $3,
                                    last_position = $4 WHERE user_id = $1",
                    table,
                    params![user_id, at, version, position],
                );
            }
            UserEvent::DeletionScheduled { purge_at, .. } => {
                // Locked out and hidden until restored or purged (a removed account stays
                // `removed`).
                writer.run(
                    "UPDATE {t} SET status = CASE WHEN status = 'removed' THEN status ELSE 'deletion_scheduled' END,
                                    purge_at = $2, updated_at = $3, version = $4, last_position = $5
                      WHERE user_id = $1",
                    table,
                    params![user_id, purge_at, at, version, position],
                );
            }
            UserEvent::DeletionCancelled { status, .. } => {
                writer.run(
                    "UPDATE {t} SET status = CASE WHEN status = 'removed' THEN status ELSE $2 END,
                                    purge_at = NULL, updated_at = $3, version = $4, last_position = $5
                      WHERE user_id = $1",
                    table,
                    params![user_id, status.as_str(), at, version, position],
                );
            }
            UserEvent::EmailVerified { .. } => {
                writer.run(
                    "UPDATE {t} SET email_verified = true, updated_at = $2, version = $3, last_position = $4
                      WHERE user_id = $1",
                    table,
                    params![user_id, at, version, position],
                );
            }
            UserEvent::EmailChanged { email, .. } => {
                writer.run(
                    "UPDATE {t} SET email = $2, email_verified = true, updated_at = $3, version = $4,
                                    last_position = $5
                      WHERE user_id = $1",
                    table,
                    params![user_id, email, at, version, position],
                );
            }
            UserEvent::LoginFailed { .. }
            | UserEvent::PlatformAdminGranted { .. }
            | UserEvent::PasswordChanged { .. }
            | UserEvent::PasswordResetRequested { .. }
            | UserEvent::PasswordReset { .. }
            | UserEvent::EmailChangeRequested { .. }
            | UserEvent::Locked { .. }
            | UserEvent::Unlocked { .. } => {
                writer.run(
                    "UPDATE {t} SET version = $2, last_position = $3 WHERE user_id = $1",
                    table,
                    params![user_id, version, position],
                );
            }
        }
        Ok(())
    }
}
