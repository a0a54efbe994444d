//! `POST /v1/tenants/{tenant_id}/users`: a user signs up under a tenant.

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

/// The signup, and the link that will confirm its address.
pub struct SignUpUser(pub domain::user::SignUpUser, pub NewLink);

#[derive(Serialize, ToSchema)]
pub struct UserCreated {
    pub user_id: Uuid,
    pub position: i64,
}

impl Command for SignUpUser {
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
        let mut events =
            domain::user::sign_up(&tenant.state, &User::default(), input.clone(), context)?;
        domain::links::with_verification(&mut events, self.1.token.hash.clone(), self.1.expires_at);
        Ok(Decision::to_append(
            Changes::new(input.tenant_id, context.now)
                .by(input.user_id)
                .creating::<User>(input.user_id, events),
        ))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _tenant: &Loaded<Tenant>,
        _context: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        let input = &self.0;
        reserve_email(transaction, input.tenant_id, &input.email, input.user_id).await?;
        keep_link(
            transaction,
            input.tenant_id,
            input.user_id,
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
        let (tenant_id, user_id) = (self.0.tenant_id, self.0.user_id);
        tracing::info!(%tenant_id, %user_id, "user signed up");
        Answer::created(UserCreated {
            user_id,
            position: last_position(appended, 0),
        })
    }
}
