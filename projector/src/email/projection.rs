//! The `email-jobs` projection: turns what an event asks to send (`notices`) into jobs, once
//! the recipient's address and the email's details are read. It only queues; the worker
//! sends. It is never replayed: a replay would mail people again about things long past.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Object;
use domain::{DomainEvent, Invitation, InvitationEvent, Team, Tenant, User, UserEvent};
use eventstore::RecordedEvent;
use eventstore::{StoreError, load_stream};
use infra::crypto::{ERASED, KeyRing};
use infra::email_jobs::{NewJob, Template, enqueue, forget_recipient};
use serde_json::{Value, json};
use uuid::Uuid;

use super::notices::{Notice, Recipient, notices_of};
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
    let notices = to_each_admin(client, keys, event, domain, notices).await?;
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
        // An import's links are not the admin's invitations: no notice per row to the admin.
        let imported = context
            .invitation
            .as_ref()
            .is_some_and(|invitation| invitation.import_id.is_some());
        if imported
            && matches!(
                notice.template,
                Template::InvitationAccepted | Template::InvitationExpired
            )
        {
            skipped("import");
            continue;
        }
        queue(client, keys, policy, event, &tenant, notice).await?;
    }
    Ok(())
}

/// A notice to the tenant's admins becomes one to each admin whose account is active now,
/// with what the email says about the webhook it concerns.
async fn to_each_admin(
    client: &Object,
    keys: &KeyRing,
    event: &RecordedEvent,
    domain: &DomainEvent,
    notices: Vec<Notice>,
) -> Result<Vec<Notice>, HandlerError> {
    if !notices
        .iter()
        .any(|n| n.recipient == Recipient::TenantAdmins)
    {
        return Ok(notices);
    }
    let members = eventstore::load_members(client, keys, event.tenant_id)
        .await
        .map_err(store_error)?;
    let mut webhook = domain::Webhook::default();
    if let DomainEvent::Webhook { webhook_id, .. } = domain {
        for recorded in load(client, keys, "webhook", *webhook_id).await? {
            if let Ok(DomainEvent::Webhook { event, .. }) = recorded.to_domain() {
                webhook.apply(&event);
            }
        }
    }
    let mut expanded = Vec::new();
    for notice in notices {
        if notice.recipient != Recipient::TenantAdmins {
            expanded.push(notice);
            continue;
        }
        let mut details = notice.details;
        if let Some(map) = details.as_object_mut() {
            map.insert("webhook_url".into(), json!(webhook.url));
        }
        for admin in members.active_admin_ids() {
            expanded.push(Notice {
                recipient: Recipient::User(admin),
                template: notice.template,
                details: details.clone(),
            });
        }
    }
    Ok(expanded)
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
            // Whether the account had a password before this event: an imported account
            // setting its first one is not told its password changed.
            let mut had_password = false;
            for recorded in &user_events {
                if let Ok(DomainEvent::User {
                    event: user_event, ..
                }) = recorded.to_domain()
                {
                    if matches!(user_event, UserEvent::Created { .. }) {
                        created_in = Some(recorded.transaction_id);
                    }
                    user.apply_at(&user_event, recorded.occurred_at);
                    if recorded.position < event.position {
                        had_password = !user.password_hash.is_empty();
                    }
                }
            }
            if user.erased || user.email.is_empty() || user.email == ERASED {
                skipped("erased");
                return Ok(());
            }
            if notice.template == Template::PasswordChanged && !had_password {
                skipped("first_password");
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
        // Expanded into one notice per admin before anything is queued.
        Recipient::TenantAdmins => return Ok(()),
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
            // An imported account is greeted by its name, in its language.
            let account = if invitation.import_id.is_some() {
                user(client, keys, user_id).await?
            } else {
                User::default()
            };
            if account.erased {
                skipped("erased");
                return Ok(());
            }
            (
                user_id,
                invitation.email,
                account.display_name,
                account.locale,
            )
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
        .map_err(store_error)
}

fn store_error(error: StoreError) -> HandlerError {
    match error {
        StoreError::Database(error) => HandlerError::classify(error),
        other => HandlerError::Poison(other.to_string()),
    }
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
