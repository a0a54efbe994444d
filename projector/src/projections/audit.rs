//! `rm_audit`: every event with a summary that never contains personal data (also the
//! search index's audit documents).

use domain::event::{LoginFailure, RemovalReason};
use domain::{DomainEvent, InvitationEvent, SessionEvent, TeamEvent, TenantEvent, UserEvent};
use serde_json::Value;
use uuid::Uuid;

use super::activity::activity_of;
use super::sessions::revocation_reason;
use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Audit;

impl ReadModel for Audit {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let (subject_id, summary) = summary(domain);
        writer
            .run(
                "INSERT INTO {t} (event_id, tenant_id, position, event_type, aggregate_type, aggregate_id, actor_id,
                                  subject_id, summary, occurred_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING",
                "rm_audit",
                params![event.event_id, event.tenant_id, event.position, event.event_type, event.aggregate_type, event.aggregate_id, event.metadata.actor_id, subject_id, summary, event.occurred_at],
            );
        Ok(())
    }
}

/// A one-line description of an event that never contains personal data.
pub fn summary(domain: &DomainEvent) -> (Option<Uuid>, String) {
    match domain {
        DomainEvent::Tenant {
            tenant_id,
            event:
                TenantEvent::Created {
                    plan,
                    admin_user_id,
                    ..
                },
        } => (
            Some(*admin_user_id),
            format!("tenant {tenant_id} created on the {} plan", plan.as_str()),
        ),
        DomainEvent::Tenant {
            tenant_id,
            event:
                TenantEvent::RateLimitChanged {
                    requests_per_hour, ..
                },
        } => (
            None,
            match requests_per_hour {
                Some(limit) => format!("tenant {tenant_id} limited to {limit} requests an hour"),
                None => format!("tenant {tenant_id} back to its plan's request limit"),
            },
        ),
        DomainEvent::Tenant {
            tenant_id,
            event:
                TenantEvent::SettingsChanged {
                    name,
                    signup_policy,
                    allowed_domains,
                    deletion_grace_days,
                    invitation_expiry_notices,
                    require_verified_email,
                    ..
                },
        } => {
            let mut changed = Vec::new();
            if name.is_some() {
                changed.push("name".to_owned());
            }
            if let Some(policy) = signup_policy {
                changed.push(format!("signup_policy ({})", policy.as_str()));
            }
            if let Some(domains) = allowed_domains {
                changed.push(format!("allowed_domains ({})", domains.len()));
            }
            if let Some(days) = deletion_grace_days {
                changed.push(format!("deletion_grace_days ({days})"));
            }
            if let Some(notices) = invitation_expiry_notices {
                changed.push(format!("invitation_expiry_notices ({notices})"));
            }
            if let Some(required) = require_verified_email {
                changed.push(format!("require_verified_email ({required})"));
            }
            (
                None,
                format!(
                    "tenant {tenant_id} settings changed: {}",
                    changed.join(", ")
                ),
            )
        }
        DomainEvent::User { user_id, event } => {
            let text = match event {
                UserEvent::Created {
                    source: Some(_), ..
                } => "user imported".to_owned(),
                UserEvent::Created { .. } => "user signed up".to_owned(),
                UserEvent::MemberJoined { role, .. } => {
                    format!("user joined the tenant as {}", role.as_str())
                }
                UserEvent::LoginFailed { reason, .. } => format!(
                    "login failed ({})",
                    match reason {
                        LoginFailure::InvalidPassword => "invalid password",
                        LoginFailure::Deactivated => "account deactivated",
                        LoginFailure::EmailNotVerified => "email address not verified",
                    }
                ),
                UserEvent::ProfileUpdated { .. } => match activity_of(domain) {
                    Some((_, _, details)) => format!("profile updated: {}", fields_list(&details)),
                    None => "profile updated".to_owned(),
                },
                UserEvent::MemberRoleChanged {
                    old_role, new_role, ..
                } => {
                    format!(
                        "role changed from {} to {}",
                        old_role.as_str(),
                        new_role.as_str()
                    )
                }
                UserEvent::Deactivated { by_admin, .. } => {
                    if *by_admin {
                        "user deactivated by an administrator".to_owned()
                    } else {
                        "user deactivated".to_owned()
                    }
                }
                UserEvent::Reactivated { .. } => "user reactivated".to_owned(),
                UserEvent::MemberRemoved { reason, .. } => match reason {
                    RemovalReason::Removed => "user removed from the tenant".to_owned(),
                    RemovalReason::Left => "user left the tenant".to_owned(),
                },
                UserEvent::Deleted { .. } => "user erased; personal data destroyed".to_owned(),
                UserEvent::PasswordChanged { .. } => "password changed".to_owned(),
                UserEvent::Locked {
                    until, failures, ..
                } => format!(
                    "locked after {failures} wrong passwords until {}",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                UserEvent::Unlocked { unlocked_by, .. } => match unlocked_by {
                    Some(by) if by == user_id => "unlocked by a password reset".to_owned(),
                    Some(_) => "unlocked by an administrator".to_owned(),
                    None => "unlocked: the lock's time passed".to_owned(),
                },
                UserEvent::DeletionScheduled {
                    purge_at, by_self, ..
                } => format!(
                    "deletion scheduled{}; purged at {}",
                    if *by_self { " by the user" } else { "" },
                    purge_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                UserEvent::DeletionCancelled { status, .. } => {
                    format!(
                        "deletion cancelled; the account is {} again",
                        status.as_str()
                    )
                }
                UserEvent::PlatformAdminGranted { .. } => {
                    "user made a platform administrator".to_owned()
                }
                UserEvent::PasswordResetRequested { expires_at, .. } => format!(
                    "password reset link sent; valid until {}",
                    expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                UserEvent::PasswordReset { .. } => {
                    "password reset by email link; every session ended".to_owned()
                }
                UserEvent::EmailChangeRequested { .. } => {
                    "address change asked for; link sent to the new address".to_owned()
                }
                UserEvent::EmailVerified { .. } => "email address verified".to_owned(),
                UserEvent::EmailChanged { .. } => {
                    "email address changed (confirmed from the new address)".to_owned()
                }
            };
            (Some(*user_id), text)
        }
        DomainEvent::Session { session_id, event } => match event {
            SessionEvent::LoggedIn { user_id, .. } => {
                (Some(*user_id), format!("logged in (session {session_id})"))
            }
            SessionEvent::Refreshed { user_id, .. } => {
                (Some(*user_id), format!("session {session_id} refreshed"))
            }
            SessionEvent::Revoked {
                user_id, reason, ..
            } => (
                Some(*user_id),
                format!(
                    "session {session_id} revoked ({})",
                    revocation_reason(*reason).replace('_', " ")
                ),
            ),
        },
        DomainEvent::Team { team_id, event } => team_summary(*team_id, event),
        DomainEvent::Invitation {
            invitation_id,
            event,
        } => invitation_summary(*invitation_id, event),
        DomainEvent::Import { import_id, event } => (None, import_summary(*import_id, event)),
        DomainEvent::Webhook { webhook_id, event } => (None, webhook_summary(*webhook_id, event)),
    }
}

/// What changed of a webhook; never its secret (which no event holds) nor its URL's query.
fn webhook_summary(webhook_id: Uuid, event: &domain::WebhookEvent) -> String {
    use domain::WebhookEvent;
    match event {
        WebhookEvent::Created { event_types, .. } => format!(
            "webhook {webhook_id} created for {}",
            event_types.join(", ")
        ),
        WebhookEvent::Updated {
            url,
            event_types,
            enabled,
            ..
        } => {
            let mut changed = Vec::new();
            if url.is_some() {
                changed.push("url".to_owned());
            }
            if let Some(types) = event_types {
                changed.push(format!("event types {}", types.join(", ")));
            }
            if let Some(enabled) = enabled {
                changed.push(if *enabled { "enabled" } else { "disabled" }.to_owned());
            }
            format!("webhook {webhook_id} updated: {}", changed.join("; "))
        }
        WebhookEvent::SecretRotated { secret_version, .. } => {
            format!("webhook {webhook_id} secret rotated (version {secret_version})")
        }
        WebhookEvent::Disabled { failing_since, .. } => format!(
            "webhook {webhook_id} turned off by the system: every attempt failed since {}",
            failing_since.format("%Y-%m-%d %H:%M UTC")
        ),
        WebhookEvent::Deleted { .. } => format!("webhook {webhook_id} deleted"),
    }
}

/// Counts and row numbers only: a row's values never reach the audit log.
fn import_summary(import_id: Uuid, event: &domain::ImportEvent) -> String {
    use domain::ImportEvent;
    let counts = |c: &domain::event::ImportCounts| {
        format!(
            "{} rows looked at: {} created, {} skipped, {} failed",
            c.processed, c.created, c.skipped, c.failed
        )
    };
    match event {
        ImportEvent::Started { format, total, .. } => {
            format!("import {import_id} started: {total} rows ({format})")
        }
        ImportEvent::Progressed { counts: c, .. } => {
            format!("import {import_id} progressed: {}", counts(c))
        }
        ImportEvent::Completed { counts: c, .. } => {
            format!("import {import_id} completed: {}", counts(c))
        }
        ImportEvent::Failed {
            counts: c, reason, ..
        } => {
            format!("import {import_id} failed ({reason}): {}", counts(c))
        }
        ImportEvent::Cancelled { counts: c, .. } => {
            format!("import {import_id} cancelled: {}", counts(c))
        }
    }
}

/// Team names are the tenant's words, not personal data; member ids are ids.
fn team_summary(team_id: Uuid, event: &TeamEvent) -> (Option<Uuid>, String) {
    let ids = |user_ids: &[Uuid]| {
        user_ids
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match event {
        TeamEvent::Created { .. } => (None, format!("team {team_id} created")),
        TeamEvent::Updated {
            name, description, ..
        } => {
            let mut changed = Vec::new();
            if name.is_some() {
                changed.push("name");
            }
            if description.is_some() {
                changed.push("description");
            }
            (
                None,
                format!("team {team_id} changed: {}", changed.join(", ")),
            )
        }
        TeamEvent::Deleted { .. } => (None, format!("team {team_id} deleted")),
        TeamEvent::MembersAdded { user_ids, .. } => (
            user_ids.first().copied().filter(|_| user_ids.len() == 1),
            format!("added to team {team_id}: {}", ids(user_ids)),
        ),
        TeamEvent::MembersRemoved {
            user_ids, reason, ..
        } => (
            user_ids.first().copied().filter(|_| user_ids.len() == 1),
            format!(
                "removed from team {team_id} ({}): {}",
                reason.as_str().replace('_', " "),
                ids(user_ids)
            ),
        ),
    }
}

/// Never the invited address: only ids, roles and times.
fn invitation_summary(invitation_id: Uuid, event: &InvitationEvent) -> (Option<Uuid>, String) {
    match event {
        InvitationEvent::Created {
            role,
            team_ids,
            expires_at,
            ..
        } => (
            None,
            format!(
                "invitation {invitation_id} created as {} to {} team(s), expires {}",
                role.as_str(),
                team_ids.len(),
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ),
        InvitationEvent::Resent { expires_at, .. } => (
            None,
            format!(
                "invitation {invitation_id} sent again, expires {}",
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ),
        InvitationEvent::Revoked { .. } => (None, format!("invitation {invitation_id} revoked")),
        InvitationEvent::Accepted {
            user_id,
            new_account,
            ..
        } => (
            Some(*user_id),
            format!(
                "invitation {invitation_id} accepted{}",
                if *new_account {
                    " (new account)"
                } else {
                    " (existing account)"
                }
            ),
        ),
        InvitationEvent::Expired { .. } => (None, format!("invitation {invitation_id} expired")),
    }
}

fn fields_list(details: &Value) -> String {
    details["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
