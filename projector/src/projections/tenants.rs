//! `rm_tenants`: one row per tenant.

use domain::{DomainEvent, TenantEvent};
use eventstore::RecordedEvent;

use super::ReadModel;
use super::statements::{Param, Writer};
use crate::error::HandlerError;

pub struct Tenants;

impl ReadModel for Tenants {
    fn statements(
        writer: &mut Writer<'_>,
        event: &RecordedEvent,
        domain: &DomainEvent,
    ) -> Result<(), HandlerError> {
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
