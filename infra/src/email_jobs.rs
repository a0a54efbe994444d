//! The email queue's write side, shared by the `email-jobs` projection (which turns events
//! into jobs) and the erasure command (which queues the deletion confirmation while the
//! address can still be read, and takes the address out of every other job).

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Client;
use uuid::Uuid;

/// What an email says; each has a text and an HTML body in every supported locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// `user.created`, with the link that confirms the address while it works.
    Welcome,
    /// `tenant.member_joined` of an existing user (an accepted invitation).
    MemberJoined,
    /// `user.profile_updated`, a burst coalesced into one notice.
    ProfileUpdated,
    /// `user.deactivated` by the user.
    Deactivated,
    /// `user.deactivated` by an administrator: a security alert.
    DeactivatedByAdmin,
    /// `user.reactivated`.
    Reactivated,
    /// `tenant.member_role_changed`: a security alert (privileges changed).
    RoleChanged,
    /// `user.session_revoked` by the user (a logout): a confirmation.
    SessionEnded,
    /// `user.session_revoked` by an administrator or after a stolen refresh token: a
    /// security alert.
    SessionRevoked,
    /// `user.deleted`: the last email, queued before the address is destroyed.
    AccountDeleted,
    /// `tenant.member_removed` by an administrator: a security alert (access ended).
    MemberRemoved,
    /// `tenant.member_removed` by the member themselves: a goodbye.
    LeftTenant,
    /// `invitation.created` and `invitation.resent`: the one-time link, to the invited
    /// address.
    Invitation,
    /// `invitation.accepted`: to the admin who invited.
    InvitationAccepted,
    /// `invitation.expired`: to the admin who invited.
    InvitationExpired,
    /// `team.members_added`: to each member added.
    TeamWelcome,
    /// `user.deletion_scheduled`: when the account will be purged (a security alert).
    DeletionScheduled,
    /// `user.deletion_cancelled`: the account was restored.
    DeletionCancelled,
    /// `user.password_changed`: a security alert.
    PasswordChanged,
    /// The user ended their other sessions: one security alert saying how many.
    OtherSessionsEnded,
    /// `user.locked`: too many wrong passwords (a security alert).
    AccountLocked,
    /// `user.password_reset_requested`: the one-time reset link.
    PasswordReset,
    /// `user.email_change_requested`: the link that confirms the new address, sent there.
    EmailChange,
    /// `user.email_changed`: to the old address (a security alert).
    EmailChanged,
    /// `webhook.disabled`: to each admin of the tenant.
    WebhookDisabled,
}

impl Template {
    pub const ALL: [Template; 25] = [
        Template::Welcome,
        Template::MemberJoined,
        Template::ProfileUpdated,
        Template::Deactivated,
        Template::DeactivatedByAdmin,
        Template::Reactivated,
        Template::RoleChanged,
        Template::SessionEnded,
        Template::SessionRevoked,
        Template::AccountDeleted,
        Template::MemberRemoved,
        Template::LeftTenant,
        Template::Invitation,
        Template::InvitationAccepted,
        Template::InvitationExpired,
        Template::TeamWelcome,
        Template::DeletionScheduled,
        Template::DeletionCancelled,
        Template::PasswordChanged,
        Template::OtherSessionsEnded,
        Template::AccountLocked,
        Template::PasswordReset,
        Template::EmailChange,
        Template::EmailChanged,
        Template::WebhookDisabled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Template::Welcome => "welcome",
            Template::MemberJoined => "member_joined",
            Template::ProfileUpdated => "profile_updated",
            Template::Deactivated => "deactivated",
            Template::DeactivatedByAdmin => "deactivated_by_admin",
            Template::Reactivated => "reactivated",
            Template::RoleChanged => "role_changed",
            Template::SessionEnded => "session_ended",
            Template::SessionRevoked => "session_revoked",
            Template::AccountDeleted => "account_deleted",
            Template::MemberRemoved => "member_removed",
            Template::LeftTenant => "left_tenant",
            Template::Invitation => "invitation",
            Template::InvitationAccepted => "invitation_accepted",
            Template::InvitationExpired => "invitation_expired",
            Template::TeamWelcome => "team_welcome",
            Template::DeletionScheduled => "deletion_scheduled",
            Template::DeletionCancelled => "deletion_cancelled",
            Template::PasswordChanged => "password_changed",
            Template::OtherSessionsEnded => "other_sessions_ended",
            Template::AccountLocked => "account_locked",
            Template::PasswordReset => "password_reset",
            Template::EmailChange => "email_change",
            Template::EmailChanged => "email_changed",
            Template::WebhookDisabled => "webhook_disabled",
        }
    }

    /// The one-time link the email carries, if it carries one.
    pub fn link(&self) -> Option<LinkPurpose> {
        match self {
            Template::Invitation => Some(LinkPurpose::Invitation),
            Template::PasswordReset => Some(LinkPurpose::PasswordReset),
            Template::Welcome | Template::EmailChange => Some(LinkPurpose::EmailVerification),
            _ => None,
        }
    }

    /// Whether the email is pointless without its link (and is not sent once the link was
    /// replaced, used or has expired). The welcome goes out without its link.
    pub fn needs_link(&self) -> bool {
        self.link().is_some() && *self != Template::Welcome
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Security alerts are never rate-limited, deferred or suppressed.
    pub fn is_security_alert(&self) -> bool {
        matches!(
            self,
            Template::DeactivatedByAdmin
                | Template::RoleChanged
                | Template::SessionRevoked
                | Template::AccountDeleted
                | Template::MemberRemoved
                | Template::DeletionScheduled
                | Template::PasswordChanged
                | Template::OtherSessionsEnded
                | Template::AccountLocked
                | Template::EmailChanged
        )
    }
}

/// The states of a job.
pub const STATUSES: [&str; 6] = [
    "pending",
    "sending",
    "sent",
    "dead",
    "suppressed",
    "discarded",
];

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub position: i64,
    pub template: Template,
    pub recipient: String,
    /// What the template greets and tells: `display_name`, `tenant_name`, `locale` and
    /// the template's own details.
    pub variables: Value,
    pub due_at: DateTime<Utc>,
}

/// The `Message-ID` of a job: the same on every attempt, so a re-send after a crash is
/// recognisable as the same message.
pub fn message_id(job_id: Uuid) -> String {
    format!("<{job_id}@eventra>")
}

/// Queues a job unless this event already made this template's email to this person. Returns the job's
/// id, or `None` for a duplicate.
pub async fn enqueue(client: &Client, job: &NewJob) -> Result<Option<Uuid>, tokio_postgres::Error> {
    let job_id = Uuid::now_v7();
    // The source row is the uniqueness guard; one statement, so a duplicate inserts nothing.
    let inserted = client
        .execute(
            "WITH source AS (
                 INSERT INTO email_job_sources (event_id, template, user_id, job_id) VALUES ($4, $6, $3, $1)
                 ON CONFLICT DO NOTHING RETURNING job_id)
             INSERT INTO email_jobs (job_id, tenant_id, user_id, event_id, position, template, security,
                                     recipient, variables, due_at, message_id)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM source",
            &[
                &job_id,
                &job.tenant_id,
                &job.user_id,
                &job.event_id,
                &job.position,
                &job.template.as_str(),
                &job.template.is_security_alert(),
                &job.recipient,
                &job.variables,
                &job.due_at,
                &message_id(job_id),
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    Ok(Some(job_id))
}

/// What an erased recipient's jobs say instead of the address and the error texts (which
/// can quote the address).
pub const ERASED_NOTE: &str = "recipient erased";

/// Erasure: takes the person's address, names and error texts out of every job of theirs
/// (but the deletion confirmation, which gives them up once it is finished); jobs not yet
/// sent are suppressed.
pub async fn forget_recipient(
    client: &Client,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE email_job_attempts SET error = NULL
              WHERE error IS NOT NULL
                AND job_id IN (SELECT job_id FROM email_jobs WHERE user_id = $1 AND template <> 'account_deleted')",
            &[&user_id],
        )
        .await?;
    client
        .execute(
            "UPDATE email_jobs
                SET recipient = NULL, variables = '{}', last_error = NULL,
                    note = CASE WHEN status IN ('pending', 'sending', 'dead') THEN $2 ELSE note END,
                    status = CASE WHEN status IN ('pending', 'sending', 'dead') THEN 'suppressed' ELSE status END,
                    lease_until = NULL, claim_token = NULL, updated_at = now()
              WHERE user_id = $1 AND template <> 'account_deleted'
                AND (recipient IS NOT NULL OR status IN ('pending', 'sending', 'dead'))",
            &[&user_id, &ERASED_NOTE],
        )
        .await
}

/// Keeps an emailed link's token, sealed, until the email of event `event_id` carries it.
pub async fn keep_secret(
    client: &Client,
    keys: &crate::crypto::KeyRing,
    secret: &EmailSecret<'_>,
) -> Result<(), anyhow::Error> {
    let sealed = keys
        .seal_secret(secret.event_id.as_bytes(), secret.token.as_bytes())
        .map_err(|e| anyhow::anyhow!("sealing a link failed: {e:?}"))?;
    client
        .execute(
            "INSERT INTO email_secrets (event_id, tenant_id, aggregate_id, sealed, expires_at, purpose)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
            &[
                &secret.event_id,
                &secret.tenant_id,
                &secret.aggregate_id,
                &sealed,
                &secret.expires_at,
                &secret.purpose.as_str(),
            ],
        )
        .await?;
    Ok(())
}

/// What an emailed link is for: an aggregate has at most one kept link of each purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Invitation,
    PasswordReset,
    /// Confirming the account's address, or the new address it moves to.
    EmailVerification,
}

impl LinkPurpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkPurpose::Invitation => "invitation",
            LinkPurpose::PasswordReset => "password_reset",
            LinkPurpose::EmailVerification => "email_verification",
        }
    }

    /// The page of `PUBLIC_URL` the link opens (with `?token=`).
    pub fn path(&self) -> &'static str {
        match self {
            LinkPurpose::Invitation => "/invitations/accept",
            LinkPurpose::PasswordReset => "/password-resets/confirm",
            LinkPurpose::EmailVerification => "/email-verifications/confirm",
        }
    }
}

/// Keeps several links' tokens at once (a bulk import's batch), each sealed.
pub async fn keep_secrets(
    client: &Client,
    keys: &crate::crypto::KeyRing,
    secrets: &[EmailSecret<'_>],
) -> Result<(), anyhow::Error> {
    let mut event_ids = Vec::with_capacity(secrets.len());
    let mut tenant_ids = Vec::with_capacity(secrets.len());
    let mut aggregate_ids = Vec::with_capacity(secrets.len());
    let mut sealed_tokens = Vec::with_capacity(secrets.len());
    let mut expiries = Vec::with_capacity(secrets.len());
    let mut purposes = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let sealed = keys
            .seal_secret(secret.event_id.as_bytes(), secret.token.as_bytes())
            .map_err(|e| anyhow::anyhow!("sealing a link failed: {e:?}"))?;
        event_ids.push(secret.event_id);
        tenant_ids.push(secret.tenant_id);
        aggregate_ids.push(secret.aggregate_id);
        sealed_tokens.push(sealed);
        expiries.push(secret.expires_at);
        purposes.push(secret.purpose.as_str());
    }
    client
        .execute(
            "INSERT INTO email_secrets (event_id, tenant_id, aggregate_id, sealed, expires_at, purpose)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bytea[], $5::timestamptz[], $6::text[])
             ON CONFLICT (event_id) DO NOTHING",
            &[
                &event_ids,
                &tenant_ids,
                &aggregate_ids,
                &sealed_tokens,
                &expiries,
                &purposes,
            ],
        )
        .await?;
    Ok(())
}

/// A one-time token on its way to an email.
pub struct EmailSecret<'a> {
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    /// The aggregate whose token it is: replacing or closing it forgets the secret.
    pub aggregate_id: Uuid,
    pub purpose: LinkPurpose,
    pub token: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// The token kept for the email of `event_id`, if it is still kept and opens.
pub async fn open_secret(
    client: &Client,
    keys: &crate::crypto::KeyRing,
    event_id: Uuid,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT sealed FROM email_secrets WHERE event_id = $1 AND expires_at > now()",
            &[&event_id],
        )
        .await?;
    Ok(row.and_then(|row| {
        let sealed: Vec<u8> = row.get(0);
        keys.open_secret(event_id.as_bytes(), &sealed)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }))
}

/// Forgets the kept tokens of an aggregate's links of one purpose (the link was replaced,
/// used, or closed).
pub async fn forget_secrets_of(
    client: &Client,
    aggregate_id: Uuid,
    purpose: LinkPurpose,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM email_secrets WHERE aggregate_id = $1 AND purpose = $2",
            &[&aggregate_id, &purpose.as_str()],
        )
        .await
}
