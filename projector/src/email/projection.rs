//! The `email-jobs` projection: which events mail whom (seed 000 US-8, US-9, US-16, US-24,
//! US-25; seed 002), the membership emails included (invitations, their outcome for the
//! inviter, team welcomes). It only queues; the worker sends. It is never replayed: a replay would
//! mail people again about things long past.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Object;
use domain::event::{RemovalReason, RevocationReason};
use domain::{
    DomainEvent, Invitation, InvitationEvent, SessionEvent, Team, TeamEvent, Tenant, User,
    UserEvent,
};
use eventstore::RecordedEvent;
use eventstore::{StoreError, load_stream};
use infra::crypto::{ERASED, KeyRing};
use infra::email_jobs::{NewJob, Template, enqueue, forget_recipient};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::HandlerError;

/// How events become jobs.
#[derive(Debug, Clone, Copy)]
pub struct EmailPolicy {
    /// `EMAIL_COALESCE_WINDOW_MS`, default 60 000: profile updates within this window of
    /// the first one make one notice, sent when the window closes.
    pub coalesce_window: Duration,
    /// `EMAIL_MAX_EVENT_AGE_HOURS`, default 24: older events mail no one (a projector
    /// started over an existing store does not mail its whole history).
    pub max_event_age: Duration,
}

impl Default for EmailPolicy {
    fn default() -> Self {
        EmailPolicy {
            coalesce_window: Duration::from_secs(60),
            max_event_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Whose address an email goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recipient {
    /// The account's address (from its stream).
    User(Uuid),
    /// The address an invitation was sent to (from the invitation's stream).
    Invitee(Uuid),
    /// The account, but at another address than its own: the new address it asked to move
    /// to, or the old one it left.
    UserAt(Uuid, String),
}

/// What one event asks to send, before the recipient's address is known.
struct Notice {
    recipient: Recipient,
    template: Template,
    details: Value,
}

fn notices_of(domain: &DomainEvent) -> Vec<Notice> {
    let notice = |user_id: Uuid, template, details| {
        vec![Notice {
            recipient: Recipient::User(user_id),
            template,
            details,
        }]
    };
    match domain {
        DomainEvent::User { user_id, event } => match event {
            UserEvent::Created { .. } => notice(*user_id, Template::Welcome, json!({})),
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
            UserEvent::EmailVerificationRequested {
                expires_at,
                new_email,
                ..
            } => {
                let details =
                    json!({"expires_at": expires_at.format("%Y-%m-%d %H:%M").to_string()});
                match new_email {
                    Some(address) => vec![Notice {
                        recipient: Recipient::UserAt(*user_id, address.clone()),
                        template: Template::EmailChange,
                        details,
                    }],
                    None => notice(*user_id, Template::EmailVerification, details),
                }
            }
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
            InvitationEvent::Created { .. } | InvitationEvent::Resent { .. } => vec![Notice {
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
        DomainEvent::Session { .. } | DomainEvent::Tenant { .. } | DomainEvent::Team { .. } => {
            Vec::new()
        }
    }
}

/// Applies one event (personal data already opened) to the email queue.
pub async fn apply(
    client: &Object,
    keys: &KeyRing,
    policy: &EmailPolicy,
    event: &RecordedEvent,
    domain: &DomainEvent,
) -> Result<(), HandlerError> {
    if let DomainEvent::User {
        user_id,
        event: UserEvent::Deleted { .. },
    } = domain
    {
        forget_recipient(client, *user_id)
            .await
            .map_err(HandlerError::classify)?;
        return Ok(());
    }
    let mut notices = notices_of(domain);
    if notices.is_empty() {
        return Ok(());
    }
    let age = (Utc::now() - event.occurred_at)
        .to_std()
        .unwrap_or_default();
    if age > policy.max_event_age {
        skipped("stale");
        return Ok(());
    }
    let context = Context::of(client, keys, event, domain).await?;
    for notice in &mut notices {
        context.complete(notice);
    }
    let tenant_events = load(client, keys, "tenant", event.tenant_id).await?;
    let mut tenant = Tenant::default();
    for recorded in &tenant_events {
        if let Ok(DomainEvent::Tenant { event, .. }) = recorded.to_domain() {
            tenant.apply(&event);
        }
    }
    for notice in notices {
        if notice.template == Template::InvitationExpired && !tenant.tells_invitation_expiry() {
            skipped("setting");
            continue;
        }
        queue(client, keys, policy, event, &tenant, notice).await?;
    }
    Ok(())
}

/// What the membership emails need to know beyond the event: the invitation it belongs to
/// and the inviter's name, or the team's name.
#[derive(Default)]
struct Context {
    invitation: Option<Invitation>,
    inviter_name: Option<String>,
    member_name: Option<String>,
    team_name: Option<String>,
}

impl Context {
    async fn of(
        client: &Object,
        keys: &KeyRing,
        event: &RecordedEvent,
        domain: &DomainEvent,
    ) -> Result<Self, HandlerError> {
        let mut context = Context::default();
        match domain {
            DomainEvent::Invitation {
                invitation_id,
                event: invitation_event,
            } => {
                let mut invitation = Invitation::default();
                for recorded in load(client, keys, "invitation", *invitation_id).await? {
                    // Only what was there when this event happened: a resend's email tells
                    // its own expiry even if it is mailed after a later resend.
                    if recorded.position > event.position {
                        break;
                    }
                    if let Ok(DomainEvent::Invitation { event, .. }) = recorded.to_domain() {
                        invitation.apply(&event);
                    }
                }
                if let Some(inviter) = invitation.invited_by {
                    context.inviter_name = Some(user(client, keys, inviter).await?.display_name);
                }
                if let InvitationEvent::Accepted { user_id, .. } = invitation_event {
                    context.member_name = Some(user(client, keys, *user_id).await?.display_name);
                }
                context.invitation = Some(invitation);
            }
            DomainEvent::Team { team_id, .. } => {
                let mut team = Team::default();
                for recorded in load(client, keys, "team", *team_id).await? {
                    if let Ok(DomainEvent::Team { event, .. }) = recorded.to_domain() {
                        team.apply(&event);
                    }
                }
                context.team_name = Some(team.name);
            }
            _ => {}
        }
        Ok(context)
    }

    /// Fills in the notice's recipient and details from what was loaded.
    fn complete(&self, notice: &mut Notice) {
        let details = notice.details.as_object_mut();
        let Some(details) = details else { return };
        if let Some(invitation) = &self.invitation {
            if let Recipient::User(id) = &mut notice.recipient
                && id.is_nil()
            {
                *id = invitation.invited_by.unwrap_or_default();
            }
            if let Some(expires_at) = invitation.expires_at {
                details.insert(
                    "expires_at".into(),
                    json!(expires_at.format("%Y-%m-%d %H:%M").to_string()),
                );
            }
            details.insert(
                "role".into(),
                json!(invitation.role.map(|role| role.as_str())),
            );
            details.insert("invitation_id".into(), json!(invitation.invitation_id));
        }
        for (key, value) in [
            ("inviter_name", &self.inviter_name),
            ("member_name", &self.member_name),
            ("team_name", &self.team_name),
        ] {
            if let Some(value) = value {
                details.insert(key.into(), json!(value));
            }
        }
    }
}

/// The user folded from their stream (personal data opened).
async fn user(client: &Object, keys: &KeyRing, user_id: Uuid) -> Result<User, HandlerError> {
    let mut user = User::default();
    for recorded in load(client, keys, "user", user_id).await? {
        if let Ok(DomainEvent::User { event, .. }) = recorded.to_domain() {
            user.apply_at(&event, recorded.occurred_at);
        }
    }
    Ok(user)
}

/// Queues one notice, once the recipient's address is read: never to an erased person.
async fn queue(
    client: &Object,
    keys: &KeyRing,
    policy: &EmailPolicy,
    event: &RecordedEvent,
    tenant: &Tenant,
    notice: Notice,
) -> Result<(), HandlerError> {
    let (user_id, recipient, display_name, locale) = match notice.recipient {
        Recipient::User(user_id) | Recipient::UserAt(user_id, _) => {
            if user_id.is_nil() {
                return Ok(());
            }
            let user_events = load(client, keys, "user", user_id).await?;
            let mut user = User::default();
            let mut created_in = None;
            for recorded in &user_events {
                if let Ok(DomainEvent::User { event, .. }) = recorded.to_domain() {
                    if matches!(event, UserEvent::Created { .. }) {
                        created_in = Some(recorded.transaction_id);
                    }
                    user.apply_at(&event, recorded.occurred_at);
                }
            }
            if user.erased || user.email.is_empty() || user.email == ERASED {
                skipped("erased");
                return Ok(());
            }
            // Joining in the signup itself is covered by the welcome email.
            if notice.template == Template::MemberJoined && created_in == Some(event.transaction_id)
            {
                return Ok(());
            }
            let address = match notice.recipient {
                Recipient::UserAt(_, address) => address,
                _ => user.email,
            };
            if address.is_empty() || address == ERASED {
                skipped("erased");
                return Ok(());
            }
            (user_id, address, user.display_name, user.locale)
        }
        Recipient::Invitee(invitation_id) => {
            let mut invitation = Invitation::default();
            for recorded in load(client, keys, "invitation", invitation_id).await? {
                if let Ok(DomainEvent::Invitation { event, .. }) = recorded.to_domain() {
                    invitation.apply(&event);
                }
            }
            let Some(user_id) = invitation.user_id else {
                return Ok(());
            };
            if invitation.email.is_empty() || invitation.email == ERASED {
                skipped("erased");
                return Ok(());
            }
            (user_id, invitation.email, String::new(), None)
        }
    };
    let mut variables = json!({
        "display_name": display_name,
        "tenant_name": tenant.name,
        "locale": locale,
    });
    if let (Some(target), Some(details)) = (variables.as_object_mut(), notice.details.as_object()) {
        target.extend(details.clone());
    }
    let job = NewJob {
        tenant_id: event.tenant_id,
        user_id,
        event_id: event.event_id,
        position: event.position,
        template: notice.template,
        recipient,
        variables,
        due_at: event.occurred_at,
    };
    if notice.template == Template::ProfileUpdated {
        coalesce(client, policy, job).await
    } else {
        enqueue(client, &job)
            .await
            .map_err(HandlerError::classify)?;
        Ok(())
    }
}

async fn load(
    client: &Object,
    keys: &KeyRing,
    aggregate_type: &str,
    id: Uuid,
) -> Result<Vec<RecordedEvent>, HandlerError> {
    load_stream(client, keys, aggregate_type, id, 0)
        .await
        .map_err(|error| match error {
            StoreError::Database(error) => HandlerError::classify(error),
            other => HandlerError::Poison(other.to_string()),
        })
}

/// A profile update joins the user's notice still waiting out its window, or opens one.
async fn coalesce(client: &Object, policy: &EmailPolicy, job: NewJob) -> Result<(), HandlerError> {
    let open = client
        .query_opt(
            "SELECT job_id, variables FROM email_jobs
              WHERE user_id = $1 AND template = $2 AND status = 'pending' AND due_at > $3
              ORDER BY due_at DESC LIMIT 1 FOR UPDATE",
            &[&job.user_id, &job.template.as_str(), &job.due_at],
        )
        .await
        .map_err(HandlerError::classify)?;
    let Some(open) = open else {
        let window = chrono::Duration::from_std(policy.coalesce_window).unwrap_or_default();
        let job = NewJob {
            due_at: job.due_at + window,
            ..job
        };
        enqueue(client, &job)
            .await
            .map_err(HandlerError::classify)?;
        return Ok(());
    };
    let job_id: Uuid = open.get(0);
    let mut variables: Value = open.get(1);
    let joined = client
        .execute(
            "INSERT INTO email_job_sources (event_id, template, user_id, job_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&job.event_id, &job.template.as_str(), &job.user_id, &job_id],
        )
        .await
        .map_err(HandlerError::classify)?;
    if joined == 0 {
        return Ok(()); // This event is already in a notice.
    }
    let fields: BTreeSet<String> = [&variables["fields"], &job.variables["fields"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    // The newest names win: the notice greets the person as they now are.
    if let (Some(target), Some(latest)) = (variables.as_object_mut(), job.variables.as_object()) {
        target.extend(latest.clone());
        target.insert("fields".into(), json!(fields));
    }
    client
        .execute(
            "UPDATE email_jobs SET variables = $2, recipient = $3, coalesced_events = coalesced_events + 1,
                                   updated_at = now()
              WHERE job_id = $1",
            &[&job_id, &variables, &job.recipient],
        )
        .await
        .map_err(HandlerError::classify)?;
    metrics::counter!("eventra_email_jobs_coalesced_total").increment(1);
    Ok(())
}

fn skipped(reason: &'static str) {
    metrics::counter!("eventra_email_jobs_skipped_total", "reason" => reason).increment(1);
}
