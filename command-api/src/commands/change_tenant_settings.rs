//! `PATCH /v1/tenants/{tenant_id}`: a tenant admin changes the tenant's name, signup policy,
//! allowed email domains or deletion grace period, decided against the membership view under
//! the tenant's lock (so a demoted admin cannot).

use api_common::error::ApiError;
use domain::tenant::SettingsChanges;
use domain::{Context, SignupPolicy, Tenant, TenantMembers};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pipeline::{Answer, Command, Decision, last_position};

pub struct ChangeTenantSettings {
    pub tenant_id: Uuid,
    pub caller_id: Uuid,
    pub changes: SettingsChanges,
}

/// A tenant's settings, as they are after the change.
#[derive(Serialize, ToSchema)]
pub struct TenantSettings {
    pub tenant_id: Uuid,
    #[schema(example = "Acme")]
    pub name: String,
    #[schema(value_type = String, example = "open", pattern = "^(open|invitation_only|email_domain)$")]
    pub signup_policy: SignupPolicy,
    /// Lower-case, sorted; what `email_domain` admits.
    pub allowed_domains: Vec<String>,
    /// Days from a scheduled deletion to the purge.
    pub deletion_grace_days: u32,
    /// Whether the inviter is told when an invitation expires.
    pub invitation_expiry_notices: bool,
    /// Whether login refuses accounts whose address is not verified.
    pub require_verified_email: bool,
    /// The position of the change's event, or of the tenant's last one when nothing changed.
    pub position: i64,
}

impl TenantSettings {
    pub fn of(tenant: &Tenant, tenant_id: Uuid, position: i64) -> Self {
        TenantSettings {
            tenant_id,
            name: tenant.name.clone(),
            signup_policy: tenant.signup_policy,
            allowed_domains: tenant.allowed_domains.clone(),
            deletion_grace_days: tenant.deletion_grace_days(),
            invitation_expiry_notices: tenant.tells_invitation_expiry(),
            require_verified_email: tenant.require_verified_email,
            position,
        }
    }
}

impl Command for ChangeTenantSettings {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<Tenant>);
    /// The tenant as the change leaves it.
    type Outcome = Tenant;

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        transaction.lock_tenant_membership(self.tenant_id).await?;
        let reader = transaction.reader();
        let members = reader.members(self.tenant_id).await?;
        let tenant = reader.load::<Tenant>(self.tenant_id).await?;
        if !tenant.state.exists() {
            return Err(ApiError::NotFound("no such tenant".into()));
        }
        Ok((members, tenant))
    }

    fn decide(
        &self,
        (members, tenant): &Self::State,
        context: &Context,
    ) -> Result<Decision<Tenant>, ApiError> {
        let events =
            domain::tenant::change_settings(&tenant.state, members, self.changes.clone(), context)?;
        let mut after = tenant.state.clone();
        events.iter().for_each(|event| after.apply(event));
        Ok(Decision {
            changes: Changes::new(self.tenant_id, context.now)
                .by(self.caller_id)
                .appending(tenant, events),
            outcome: after,
        })
    }

    fn answer(
        &self,
        (_, tenant): &Self::State,
        after: Tenant,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let position = last_position(appended, tenant.last_position);
        Answer::ok(TenantSettings::of(&after, self.tenant_id, position))
    }
}
