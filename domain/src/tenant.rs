//! The tenant aggregate: an organisation with a name and a plan.

use uuid::Uuid;

use crate::event::{TenantEvent, UserEvent};
use crate::values::{DisplayName, Email, TenantName};
use crate::{Context, DomainError, Plan, Role};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenant {
    pub tenant_id: Option<Uuid>,
    pub name: String,
    pub plan: Plan,
    /// A platform administrator's override of the plan's request limit.
    pub rate_limit_per_hour: Option<u32>,
    /// The number of events applied: the stream's version.
    pub version: i64,
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
