//! The webhook commands (ADR 0028): register, change, rotate the secret of, and delete a
//! tenant's webhook. A new secret is kept sealed in the command's transaction and shown
//! once, in the answer (which is never stored for an idempotency key).

use api_common::error::ApiError;
use domain::webhook::{CreateWebhook, WebhookChanges};
use domain::{Context, Webhook};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use infra::webhooks::SigningKey;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pipeline::{Answer, Command, Decision, last_position};

/// What a webhook command does.
pub enum WebhookChange {
    Create(CreateWebhook, SigningKey),
    Update(WebhookChanges),
    RotateSecret(SigningKey),
    Delete,
}

pub struct WebhookCommand {
    pub tenant_id: Uuid,
    pub webhook_id: Uuid,
    pub caller_id: Uuid,
    pub change: WebhookChange,
}

/// `{webhook_id, secret, position}`: the signing secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    pub webhook_id: Uuid,
    /// `whsec_<base64 of the key bytes>`: the key of the `webhook-signature` HMAC. It is
    /// shown only here; keep it.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
    pub position: i64,
}

/// `{secret, position}` after a rotation: the new secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct SecretRotated {
    pub webhook_id: Uuid,
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
    pub position: i64,
}

/// `{webhook_id, version, position}` after a change or a deletion.
#[derive(Serialize, ToSchema)]
pub struct WebhookVersion {
    pub webhook_id: Uuid,
    /// The version of the webhook's stream after the command.
    pub version: i64,
    pub position: i64,
}

impl Command for WebhookCommand {
    type Unit = Transaction;
    type State = Loaded<Webhook>;
    type Outcome = ();
    const ANSWER_HOLDS_CREDENTIALS: bool = true;

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        let webhook = transaction
            .reader()
            .load::<Webhook>(self.webhook_id)
            .await?;
        // Another tenant's webhook is not there at all.
        if webhook.state.webhook_id.is_some() && webhook.state.tenant_id != Some(self.tenant_id) {
            return Err(ApiError::NotFound("no such webhook in this tenant".into()));
        }
        Ok(webhook)
    }

    fn decide(&self, webhook: &Self::State, context: &Context) -> Result<Decision, ApiError> {
        let state = &webhook.state;
        let events = match &self.change {
            WebhookChange::Create(command, _) => {
                domain::webhook::create(state, command.clone(), context)?
            }
            WebhookChange::Update(changes) => {
                domain::webhook::update(state, changes.clone(), context)?
            }
            WebhookChange::RotateSecret(_) => domain::webhook::rotate_secret(state, context)?,
            WebhookChange::Delete => domain::webhook::delete(state, context)?,
        };
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(self.caller_id)
                .appending(webhook, events),
        ))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        webhook: &Self::State,
        _: &Context,
        _: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        let (key, version) = match &self.change {
            WebhookChange::Create(_, key) => (key, 1),
            WebhookChange::RotateSecret(key) => (key, webhook.state.secret_version + 1),
            _ => return Ok(()),
        };
        transaction
            .keep_webhook_secret(self.tenant_id, self.webhook_id, version, key)
            .await?;
        Ok(())
    }

    fn answer(
        &self,
        webhook: &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let position = last_position(appended, webhook.last_position);
        tracing::info!(tenant_id = %self.tenant_id, webhook_id = %self.webhook_id, events = appended.len(), "webhook changed");
        match &self.change {
            WebhookChange::Create(_, key) => Answer::created(WebhookCreated {
                webhook_id: self.webhook_id,
                secret: key.reveal(),
                position,
            }),
            WebhookChange::RotateSecret(key) => Answer::ok(SecretRotated {
                webhook_id: self.webhook_id,
                secret: key.reveal(),
                position,
            }),
            WebhookChange::Update(_) | WebhookChange::Delete => Answer::ok(WebhookVersion {
                webhook_id: self.webhook_id,
                version: webhook.version + appended.len() as i64,
                position,
            }),
        }
    }
}
