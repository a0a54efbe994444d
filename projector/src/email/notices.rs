//! Which emails an event asks for, and to whom, before any address is read: the rules of
//! the `email-jobs` projection (seed 000 US-8, US-9, US-16, US-24, US-25; seed 002).

use domain::event::{RemovalReason, RevocationReason};
use domain::{DomainEvent, InvitationEvent, SessionEvent, TeamEvent, UserEvent};
use infra::email_jobs::Template;
use serde_json::{Value, json};
use uuid::Uuid;

/// Whose address an email goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Recipient {
    /// The account's address (from its stream).
    User(Uuid),
    /// The address an invitation was sent to (from the invitation's stream).
    Invitee(Uuid),
    /// The account, but at another address than its own: the new address it asked to move
    /// to, or the old one it left.
    UserAt(Uuid, String),
    /// Every active admin of the event's tenant (one job each).
    TenantAdmins,
}

/// What one event asks to send, before the recipient's address is known.
pub(super) struct Notice {
    pub recipient: Recipient,
    pub template: Template,
    pub details: Value,
}

pub(super) fn notices_of(domain: &DomainEvent) -> Vec<Notice> {
    let notice = |user_id: Uuid, template, details| {
        vec![Notice {
            recipient: Recipient::User(user_id),
            template,
            details,
        }]
    };
    match domain {
        DomainEvent::User { user_id, event } => match event {
            // The welcome carries the link that confirms the address, while it works.
            // An imported account is told by the link to set its password, not a welcome.
            UserEvent::Created {
                source: Some(_), ..
            } => Vec::new(),
            UserEvent::Created {
                email_verification, ..
            } => notice(
                *user_id,
                Template::Welcome,
                match email_verification {
                    Some(link) => {
                        json!({"expires_at": link.expires_at.format("%Y-%m-%d %H:%M").to_string()})
                    }
                    None => json!({}),
                },
            ),
            UserEvent::MemberJoined { role, .. } => notice(
                *user_id,
                Template::MemberJoined,
                json!({"role": role.as_str()}),
            ),
            UserEvent::ProfileUpdated { .. } => notice(
                *user_id,
                Template::ProfileUpdated,
                json!({"fields": event.changed_fields()}),
            ),
            UserEvent::Deactivated { by_admin, .. } => notice(
                *user_id,
                if *by_admin {
                    Template::DeactivatedByAdmin
                } else {
                    Template::Deactivated
                },
                json!({}),
            ),
            UserEvent::Reactivated { .. } => notice(*user_id, Template::Reactivated, json!({})),
            UserEvent::MemberRoleChanged {
                old_role, new_role, ..
            } => notice(
                *user_id,
                Template::RoleChanged,
                json!({"old_role": old_role.as_str(), "new_role": new_role.as_str()}),
            ),
            // The deletion confirmation is queued by the erasure itself, while the address
            // can still be read; here the erasure only makes sure no job keeps it.
            // Before an erasure too; that one is skipped below, the account being erased.
            UserEvent::MemberRemoved { reason, .. } => notice(
                *user_id,
                match reason {
                    RemovalReason::Removed => Template::MemberRemoved,
                    RemovalReason::Left => Template::LeftTenant,
                },
                json!({}),
            ),
            UserEvent::DeletionScheduled {
                purge_at, by_self, ..
            } => notice(
                *user_id,
                Template::DeletionScheduled,
                json!({"purge_at": purge_at.format("%Y-%m-%d %H:%M").to_string(), "by_self": by_self}),
            ),
            UserEvent::DeletionCancelled { .. } => {
                notice(*user_id, Template::DeletionCancelled, json!({}))
            }
            UserEvent::PasswordChanged { .. } => {
                notice(*user_id, Template::PasswordChanged, json!({}))
            }
            UserEvent::Locked {
                until, failures, ..
            } => notice(
                *user_id,
                Template::AccountLocked,
                json!({"until": until.format("%Y-%m-%d %H:%M").to_string(), "failures": failures.to_string()}),
            ),
            UserEvent::PasswordResetRequested { expires_at, .. } => notice(
                *user_id,
                Template::PasswordReset,
                json!({"expires_at": expires_at.format("%Y-%m-%d %H:%M").to_string()}),
            ),
            UserEvent::PasswordReset { .. } => {
                notice(*user_id, Template::PasswordChanged, json!({"reset": true}))
            }
            UserEvent::EmailChangeRequested {
                expires_at,
                new_email,
                ..
            } => vec![Notice {
                recipient: Recipient::UserAt(*user_id, new_email.clone()),
                template: Template::EmailChange,
                details: json!({"expires_at": expires_at.format("%Y-%m-%d %H:%M").to_string()}),
            }],
            UserEvent::EmailChanged { old_email, .. } => vec![Notice {
                recipient: Recipient::UserAt(*user_id, old_email.clone()),
                template: Template::EmailChanged,
                details: json!({}),
            }],
            UserEvent::Deleted { .. }
            | UserEvent::EmailVerified { .. }
            | UserEvent::Unlocked { .. }
            | UserEvent::LoginFailed { .. }
            | UserEvent::PlatformAdminGranted { .. } => Vec::new(),
        },
        DomainEvent::Session {
            session_id,
            event: SessionEvent::Revoked {
                user_id, reason, ..
            },
        } => {
            let (template, reason) = match reason {
                RevocationReason::Logout => (Template::SessionEnded, "logout"),
                RevocationReason::RevokedByAdmin => (Template::SessionRevoked, "revoked_by_admin"),
                RevocationReason::RefreshTokenReused => {
                    (Template::SessionRevoked, "refresh_token_reused")
                }
                // One email for them all: queued by the command that ended them (other
                // sessions), or the password change's own.
                RevocationReason::SignedOutElsewhere
                | RevocationReason::PasswordChanged
                | RevocationReason::PasswordReset => {
                    return Vec::new();
                }
            };
            notice(
                *user_id,
                template,
                json!({"session_id": session_id, "reason": reason}),
            )
        }
        DomainEvent::Invitation {
            invitation_id,
            event,
        } => match event {
            InvitationEvent::Created { import_id, .. } => vec![Notice {
                recipient: Recipient::Invitee(*invitation_id),
                template: Template::Invitation,
                details: json!({"imported": import_id.is_some()}),
            }],
            InvitationEvent::Resent { .. } => vec![Notice {
                recipient: Recipient::Invitee(*invitation_id),
                template: Template::Invitation,
                details: json!({}),
            }],
            // The inviter is read from the invitation's stream; the recipient is set there.
            InvitationEvent::Accepted { user_id, .. } => vec![Notice {
                recipient: Recipient::User(Uuid::nil()),
                template: Template::InvitationAccepted,
                details: json!({"member_id": user_id}),
            }],
            InvitationEvent::Expired { .. } => vec![Notice {
                recipient: Recipient::User(Uuid::nil()),
                template: Template::InvitationExpired,
                details: json!({}),
            }],
            InvitationEvent::Revoked { .. } => Vec::new(),
        },
        DomainEvent::Team {
            team_id,
            event: TeamEvent::MembersAdded { user_ids, .. },
        } => user_ids
            .iter()
            .map(|user_id| Notice {
                recipient: Recipient::User(*user_id),
                template: Template::TeamWelcome,
                details: json!({"team_id": team_id}),
            })
            .collect(),
        DomainEvent::Webhook {
            webhook_id,
            event:
                domain::event::WebhookEvent::Disabled {
                    failing_since,
                    last_error,
                    ..
                },
        } => vec![Notice {
            recipient: Recipient::TenantAdmins,
            template: Template::WebhookDisabled,
            details: json!({
                "webhook_id": webhook_id,
                "failing_since": failing_since.format("%Y-%m-%d %H:%M").to_string(),
                "last_error": last_error,
            }),
        }],
        DomainEvent::Session { .. }
        | DomainEvent::Tenant { .. }
        | DomainEvent::Team { .. }
        | DomainEvent::Import { .. }
        | DomainEvent::Webhook { .. } => Vec::new(),
    }
}
