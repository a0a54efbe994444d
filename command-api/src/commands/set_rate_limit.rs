//! `command-api set-rate-limit <tenant id> <requests per hour | plan>`: overrides a
//! tenant's request limit (or returns it to its plan's), as an event on the tenant's
//! stream, so the change is audited.

use api_common::error::ApiError;
use domain::{Context, Tenant};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde_json::json;
use uuid::Uuid;

use crate::pipeline::{Answer, Command, Decision, last_position};

pub struct SetRateLimit {
    pub tenant_id: Uuid,
    /// `None`: back to the plan's limit.
    pub requests_per_hour: Option<u32>,
}

impl Command for SetRateLimit {
    type Unit = Transaction;
    type State = Loaded<Tenant>;
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Loaded<Tenant>, ApiError> {
        Ok(transaction.reader().load::<Tenant>(self.tenant_id).await?)
    }

    fn decide(&self, tenant: &Loaded<Tenant>, context: &Context) -> Result<Decision, ApiError> {
        let events = domain::tenant::set_rate_limit(&tenant.state, self.requests_per_hour)?;
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now).appending(tenant, events),
        ))
    }

    fn answer(
        &self,
        tenant: &Loaded<Tenant>,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        Answer::ok(json!({"position": last_position(appended, tenant.last_position)}))
    }
}
