//! The tenant aggregate: an organisation with a name and a plan.

use uuid::Uuid;

use crate::event::{TenantEvent, UserEvent};
use crate::members::TenantMembers;
use crate::values::{DisplayName, Email, MailDomain, SignupPolicy, TenantName};
use crate::{Context, DomainError, Plan, Role};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenant {
    pub tenant_id: Option<Uuid>,
    pub name: String,
    pub plan: Plan,
    /// A platform administrator's override of the plan's request limit.
    pub rate_limit_per_hour: Option<u32>,
    pub signup_policy: SignupPolicy,
    /// Lower-case, sorted, without repeats.
    pub allowed_domains: Vec<String>,
    /// Days between a scheduled deletion and the purge, when an admin set them.
    pub deletion_grace_days: Option<u32>,
    /// Whether the inviter hears of an invitation's expiry, when an admin set it.
    pub invitation_expiry_notices: Option<bool>,
    /// Whether login refuses accounts whose address is not verified (default off).
    pub require_verified_email: bool,
    /// The number of events applied: the stream's version.
    pub version: i64,
}

/// Days between a scheduled deletion and the purge, unless the tenant sets its own.
pub const DEFAULT_DELETION_GRACE_DAYS: u32 = 30;
/// The longest grace period a tenant may set (ten years).
pub const MAX_DELETION_GRACE_DAYS: u32 = 3650;
/// How many domains an `email_domain` policy may list.
pub const MAX_ALLOWED_DOMAINS: usize = 100;

/// A settings change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChanges {
    pub name: Option<TenantName>,
    pub signup_policy: Option<SignupPolicy>,
    pub allowed_domains: Option<Vec<MailDomain>>,
    pub deletion_grace_days: Option<u32>,
    pub invitation_expiry_notices: Option<bool>,
    pub require_verified_email: Option<bool>,
}

/// Tenant signup: the tenant and its first administrator, in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUpTenant {
    pub tenant_id: Uuid,
    pub name: TenantName,
    pub plan: Plan,
    pub admin_user_id: Uuid,
    pub admin_email: Email,
    pub admin_display_name: DisplayName,
    /// The admin's password, already hashed (hashing is slow and belongs outside decisions).
    pub admin_password_hash: String,
}

impl Tenant {
    pub fn exists(&self) -> bool {
        self.tenant_id.is_some()
    }

    /// The grace period of a scheduled deletion, in days.
    pub fn deletion_grace_days(&self) -> u32 {
        self.deletion_grace_days
            .unwrap_or(DEFAULT_DELETION_GRACE_DAYS)
    }

    /// Whether an invitation's expiry is told to the admin who invited (yes unless set off).
    pub fn tells_invitation_expiry(&self) -> bool {
        self.invitation_expiry_notices.unwrap_or(true)
    }

    /// Whether the signup policy admits this address signing up by itself.
    pub fn admits_self_signup(&self, email: &Email) -> Result<(), DomainError> {
        match self.signup_policy {
            SignupPolicy::Open => Ok(()),
            SignupPolicy::InvitationOnly => Err(DomainError::SignupRefused(
                "this tenant admits new members by invitation only".into(),
            )),
            SignupPolicy::EmailDomain if self.allowed_domains.contains(&email.domain()) => Ok(()),
            SignupPolicy::EmailDomain => Err(DomainError::SignupRefused(
                "this tenant admits self-signup only from its allowed email domains".into(),
            )),
        }
    }

    pub fn apply(&mut self, event: &TenantEvent) {
        match event {
            TenantEvent::Created {
                tenant_id,
                name,
                plan,
                ..
            } => {
                self.tenant_id = Some(*tenant_id);
                self.name.clone_from(name);
                self.plan = *plan;
            }
            TenantEvent::RateLimitChanged {
                requests_per_hour, ..
            } => {
                self.rate_limit_per_hour = *requests_per_hour;
            }
            TenantEvent::SettingsChanged {
                name,
                signup_policy,
                allowed_domains,
                deletion_grace_days,
                invitation_expiry_notices,
                require_verified_email,
                ..
            } => {
                if let Some(name) = name {
                    self.name.clone_from(name);
                }
                if let Some(policy) = signup_policy {
                    self.signup_policy = *policy;
                }
                if let Some(domains) = allowed_domains {
                    self.allowed_domains.clone_from(domains);
                }
                if let Some(days) = deletion_grace_days {
                    self.deletion_grace_days = Some(*days);
                }
                if let Some(notices) = invitation_expiry_notices {
                    self.invitation_expiry_notices = Some(*notices);
                }
                if let Some(required) = require_verified_email {
                    self.require_verified_email = *required;
                }
            }
        }
        self.version += 1;
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a TenantEvent>) -> Self {
        let mut tenant = Tenant::default();
        for event in events {
            tenant.apply(event);
        }
        tenant
    }
}

/// Decides a tenant signup: `tenant.created` on the tenant's stream, then `user.created`
/// and `tenant.member_joined` (as admin) on the first administrator's stream.
pub fn sign_up_tenant(
    tenant: &Tenant,
    command: SignUpTenant,
    _context: &Context,
) -> Result<(Vec<TenantEvent>, Vec<UserEvent>), DomainError> {
    if tenant.exists() {
        return Err(DomainError::TenantAlreadyExists);
    }
    let tenant_events = vec![TenantEvent::Created {
        tenant_id: command.tenant_id,
        name: command.name.into_inner(),
        plan: command.plan,
        admin_user_id: command.admin_user_id,
    }];
    let user_events = vec![
        UserEvent::Created {
            user_id: command.admin_user_id,
            tenant_id: command.tenant_id,
            email: command.admin_email.into_inner(),
            display_name: command.admin_display_name.into_inner(),
            password_hash: command.admin_password_hash,
            email_verification: None,
            source: None,
        },
        UserEvent::MemberJoined {
            tenant_id: command.tenant_id,
            user_id: command.admin_user_id,
            role: Role::Admin,
        },
    ];
    Ok((tenant_events, user_events))
}

/// A platform administrator sets (or, with `None`, clears) the tenant's request limit.
/// Setting the limit it already has changes nothing.
pub fn set_rate_limit(
    tenant: &Tenant,
    requests_per_hour: Option<u32>,
) -> Result<Vec<TenantEvent>, DomainError> {
    let tenant_id = tenant.tenant_id.ok_or(DomainError::TenantNotFound)?;
    if requests_per_hour == Some(0) {
        return Err(DomainError::Invalid(
            "a rate limit must allow at least one request an hour".into(),
        ));
    }
    if tenant.rate_limit_per_hour == requests_per_hour {
        return Ok(Vec::new());
    }
    Ok(vec![TenantEvent::RateLimitChanged {
        tenant_id,
        requests_per_hour,
    }])
}

/// A tenant admin changes the tenant's settings. Only what differs from the current settings
/// is recorded; a change that changes nothing appends nothing. An `email_domain` policy
/// needs at least one allowed domain, given now or before.
pub fn change_settings(
    tenant: &Tenant,
    members: &TenantMembers,
    changes: SettingsChanges,
    context: &Context,
) -> Result<Vec<TenantEvent>, DomainError> {
    let tenant_id = tenant.tenant_id.ok_or(DomainError::TenantNotFound)?;
    let actor = members.require_admin(&context.actor)?;
    if let Some(days) = changes.deletion_grace_days
        && days > MAX_DELETION_GRACE_DAYS
    {
        return Err(DomainError::Invalid(format!(
            "deletion_grace_days must be 0 to {MAX_DELETION_GRACE_DAYS}"
        )));
    }
    let allowed_domains = match changes.allowed_domains {
        Some(domains) if domains.len() > MAX_ALLOWED_DOMAINS => {
            return Err(DomainError::Invalid(format!(
                "allowed_domains may list at most {MAX_ALLOWED_DOMAINS} domains"
            )));
        }
        Some(domains) => {
            let mut domains: Vec<String> =
                domains.into_iter().map(MailDomain::into_inner).collect();
            domains.sort();
            domains.dedup();
            Some(domains)
        }
        None => None,
    };
    let policy = changes.signup_policy.unwrap_or(tenant.signup_policy);
    let domains = allowed_domains.as_ref().unwrap_or(&tenant.allowed_domains);
    if policy == SignupPolicy::EmailDomain && domains.is_empty() {
        return Err(DomainError::Invalid(
            "signup_policy email_domain needs at least one of allowed_domains".into(),
        ));
    }
    let name = changes
        .name
        .map(TenantName::into_inner)
        .filter(|name| *name != tenant.name);
    let signup_policy = changes
        .signup_policy
        .filter(|policy| *policy != tenant.signup_policy);
    let allowed_domains = allowed_domains.filter(|domains| *domains != tenant.allowed_domains);
    let deletion_grace_days = changes
        .deletion_grace_days
        .filter(|days| *days != tenant.deletion_grace_days());
    let invitation_expiry_notices = changes
        .invitation_expiry_notices
        .filter(|notices| *notices != tenant.tells_invitation_expiry());
    let require_verified_email = changes
        .require_verified_email
        .filter(|required| *required != tenant.require_verified_email);
    if name.is_none()
        && signup_policy.is_none()
        && allowed_domains.is_none()
        && deletion_grace_days.is_none()
        && invitation_expiry_notices.is_none()
        && require_verified_email.is_none()
    {
        return Ok(Vec::new());
    }
    Ok(vec![TenantEvent::SettingsChanged {
        tenant_id,
        name,
        signup_policy,
        allowed_domains,
        deletion_grace_days,
        invitation_expiry_notices,
        require_verified_email,
        changed_by: actor,
    }])
}
