//! `rm_tenants`: one row per tenant.

use domain::{DomainEvent, TenantEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Tenants;

impl ReadModel for Tenants {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        if let DomainEvent::Tenant {
            event:
                TenantEvent::Created {
                    tenant_id,
                    name,
                    plan,
                    admin_user_id,
                },
            ..
        } = domain
        {
            writer.run(
                "INSERT INTO {t} (tenant_id, name, plan, admin_user_id, created_at, last_position)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO NOTHING",
                "rm_tenants",
                params![
                    tenant_id,
                    name,
                    plan.as_str(),
                    admin_user_id,
                    event.occurred_at,
                    event.position
                ],
            );
        }
        Ok(())
    }
}
