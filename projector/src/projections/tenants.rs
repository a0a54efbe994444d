//! `rm_tenants`: one row per tenant, with its settings.

use domain::{DomainEvent, TenantEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Tenants;

impl ReadModel for Tenants {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let DomainEvent::Tenant { event: tenant, .. } = domain else {
            return Ok(());
        };
        let table = "rm_tenants";
        match tenant {
            TenantEvent::Created {
                tenant_id,
                name,
                plan,
                admin_user_id,
            } => writer.run(
                "INSERT INTO {t} (tenant_id, name, plan, admin_user_id, created_at, last_position)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO NOTHING",
                table,
                params![
                    tenant_id,
                    name,
                    plan.as_str(),
                    admin_user_id,
                    event.occurred_at,
                    event.position
                ],
            ),
            TenantEvent::SettingsChanged {
                tenant_id,
                name,
                signup_policy,
                allowed_domains,
                deletion_grace_days,
                invitation_expiry_notices,
                require_verified_email,
                ..
            } => writer.run(
                "UPDATE {t} SET name = coalesce($2, name),
                                signup_policy = coalesce($3, signup_policy),
                                allowed_domains = coalesce($4, allowed_domains),
                                deletion_grace_days = coalesce($5, deletion_grace_days),
                                invitation_expiry_notices = coalesce($8, invitation_expiry_notices),
                                require_verified_email = coalesce($9, require_verified_email),
                                updated_at = $6, last_position = $7
                  WHERE tenant_id = $1",
                table,
                params![
                    tenant_id,
                    name.clone(),
                    signup_policy.map(|policy| policy.as_str().to_owned()),
                    allowed_domains.clone(),
                    deletion_grace_days.map(i32::try_from).and_then(Result::ok),
                    event.occurred_at,
                    event.position,
                    *invitation_expiry_notices,
                    *require_verified_email
                ],
            ),
            TenantEvent::RateLimitChanged { .. } => {}
        }
        Ok(())
    }
}
