//! `rm_activity`: what each user did, in the vocabulary of `read_models::activity`.

use domain::{DomainEvent, InvitationEvent, SessionEvent, TeamEvent, UserEvent};
use serde_json::{Value, json};
use uuid::Uuid;

use super::sessions::revocation_reason;
use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Activity;

impl ReadModel for Activity {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        if let Some((user_id, action, details)) = activity_of(domain) {
            writer
                .run(
                    "INSERT INTO {t} (event_id, tenant_id, position, user_id, actor_id, action, details, occurred_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
                    "rm_activity",
                    params![event.event_id, event.tenant_id, event.position, user_id, event.metadata.actor_id, action, details, event.occurred_at],
                );
        }
        Ok(())
    }
}

/// The activity of a user (seed US-10): what they did or what was done to their account.
pub(super) fn activity_of(domain: &DomainEvent) -> Option<(Uuid, &'static str, Value)> {
    match domain {
        DomainEvent::User { user_id, event } => match event {
            UserEvent::Created { .. } => Some((*user_id, "signed_up", json!({}))),
            UserEvent::LoginFailed { reason, .. } => {
                Some((*user_id, "login_failed", json!({"reason": reason.as_str()})))
            }
            UserEvent::ProfileUpdated { .. } => Some((
                *user_id,
                "profile_updated",
                json!({"fields": event.changed_fields()}),
            )),
            UserEvent::MemberRoleChanged {
                old_role, new_role, ..
            } => Some((
                *user_id,
                "role_changed",
                json!({"old_role": old_role.as_str(), "new_role": new_role.as_str()}),
            )),
            UserEvent::Deactivated { .. } => Some((*user_id, "deactivated", json!({}))),
            UserEvent::Reactivated { .. } => Some((*user_id, "reactivated", json!({}))),
            UserEvent::Deleted { .. } => Some((*user_id, "erased", json!({}))),
            UserEvent::PasswordChanged { .. } => Some((*user_id, "password_changed", json!({}))),
            UserEvent::Locked {
                until, failures, ..
            } => Some((
                *user_id,
                "locked",
                json!({"until": until, "failures": failures}),
            )),
            UserEvent::Unlocked { unlocked_by, .. } => Some((
                *user_id,
                "unlocked",
                json!({"by_system": unlocked_by.is_none(), "by_reset": *unlocked_by == Some(*user_id)}),
            )),
            UserEvent::PasswordResetRequested { expires_at, .. } => Some((
                *user_id,
                "password_reset_requested",
                json!({"expires_at": expires_at}),
            )),
            UserEvent::PasswordReset { .. } => Some((*user_id, "password_reset", json!({}))),
            UserEvent::EmailChangeRequested { expires_at, .. } => Some((
                *user_id,
                "email_change_requested",
                json!({"expires_at": expires_at}),
            )),
            UserEvent::EmailVerified { .. } => Some((*user_id, "email_verified", json!({}))),
            UserEvent::EmailChanged { .. } => Some((*user_id, "email_changed", json!({}))),
            UserEvent::DeletionScheduled {
                purge_at, by_self, ..
            } => Some((
                *user_id,
                "deletion_scheduled",
                json!({"purge_at": purge_at, "by_self": by_self}),
            )),
            UserEvent::DeletionCancelled { .. } => {
                Some((*user_id, "deletion_cancelled", json!({})))
            }
            UserEvent::MemberJoined { .. } | UserEvent::MemberRemoved { .. } => None,
            UserEvent::PlatformAdminGranted { .. } => {
                Some((*user_id, "platform_admin_granted", json!({})))
            }
        },
        DomainEvent::Session { session_id, event } => match event {
            SessionEvent::LoggedIn { user_id, .. } => {
                Some((*user_id, "logged_in", json!({"session_id": session_id})))
            }
            SessionEvent::Revoked {
                user_id, reason, ..
            } => Some((
                *user_id,
                "session_revoked",
                json!({"session_id": session_id, "reason": revocation_reason(*reason)}),
            )),
            SessionEvent::Refreshed { .. } => None,
        },
        DomainEvent::Invitation {
            invitation_id,
            event: InvitationEvent::Accepted { user_id, .. },
        } => Some((
            *user_id,
            "invitation_accepted",
            json!({"invitation_id": invitation_id}),
        )),
        // One row per event: a team change naming one member is that member's activity.
        DomainEvent::Team {
            team_id,
            event: TeamEvent::MembersAdded { user_ids, .. },
        } if user_ids.len() == 1 => Some((user_ids[0], "team_joined", json!({"team_id": team_id}))),
        DomainEvent::Team {
            team_id,
            event: TeamEvent::MembersRemoved {
                user_ids, reason, ..
            },
        } if user_ids.len() == 1 => Some((
            user_ids[0],
            "team_left",
            json!({"team_id": team_id, "reason": reason.as_str()}),
        )),
        DomainEvent::Tenant { .. }
        | DomainEvent::Team { .. }
        | DomainEvent::Invitation { .. }
        | DomainEvent::Import { .. }
        | DomainEvent::Webhook { .. } => None,
    }
}
