//! `POST /v1/tenants`: a tenant and its first admin.

use api_common::error::ApiError;
use domain::{Context, Tenant, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use infra::email_jobs::LinkPurpose;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::links::{NewLink, keep_link};
use super::reserve_email;
use crate::pipeline::{Answer, Command, Decision, last_position};

/// The signup, and the link that will confirm the first admin's address.
pub struct SignUpTenant(pub domain::tenant::SignUpTenant, pub NewLink);

#[derive(Serialize, ToSchema)]
pub struct TenantCreated {
    pub tenant_id: Uuid,
    pub admin_user_id: Uuid,
    /// The position of the last event appended: pass it as `X-Min-Position` to read it.
    pub position: i64,
}

impl Command for SignUpTenant {
    type Unit = Transaction;
    type State = Loaded<Tenant>;
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Loaded<Tenant>, ApiError> {
        Ok(transaction
            .reader()
            .load::<Tenant>(self.0.tenant_id)
            .await?)
    }

    fn decide(&self, tenant: &Loaded<Tenant>, context: &Context) -> Result<Decision, ApiError> {
        let input = &self.0;
        let (tenant_events, mut user_events) =
            domain::tenant::sign_up_tenant(&tenant.state, input.clone(), context)?;
        domain::links::with_verification(
            &mut user_events,
            self.1.token.hash.clone(),
            self.1.expires_at,
        );
        let mut changes = Changes::new(input.tenant_id, context.now).by(input.admin_user_id);
        changes.append(tenant, tenant_events);
        changes.create::<User>(input.admin_user_id, user_events);
        Ok(Decision::to_append(changes))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _tenant: &Loaded<Tenant>,
        _context: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        let input = &self.0;
        reserve_email(
            transaction,
            input.tenant_id,
            &input.admin_email,
            input.admin_user_id,
        )
        .await?;
        keep_link(
            transaction,
            input.tenant_id,
            input.admin_user_id,
            LinkPurpose::EmailVerification,
            &self.1,
            appended,
        )
        .await
    }

    fn answer(
        &self,
        _tenant: &Loaded<Tenant>,
        _outcome: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let (tenant_id, admin_user_id) = (self.0.tenant_id, self.0.admin_user_id);
        tracing::info!(%tenant_id, %admin_user_id, "tenant signed up");
        Answer::created(TenantCreated {
            tenant_id,
            admin_user_id,
            position: last_position(appended, 0),
        })
    }
}
