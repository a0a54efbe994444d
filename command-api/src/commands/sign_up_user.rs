//! `POST /v1/tenants/{tenant_id}/users`: a user signs up under a tenant.

use api_common::error::ApiError;
use domain::{Context, Tenant, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::reserve_email;
use crate::pipeline::{Answer, Command, Decision, last_position};

pub struct SignUpUser(pub domain::user::SignUpUser);

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
        let events =
            domain::user::sign_up(&tenant.state, &User::default(), input.clone(), context)?;
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
        _appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        reserve_email(transaction, self.0.tenant_id, &self.0.email, self.0.user_id).await
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
