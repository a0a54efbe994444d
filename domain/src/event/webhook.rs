//! Events of a webhook's stream (aggregate id = webhook id): a tenant's subscription of an
//! HTTPS endpoint to its events (ADR 0028). The signing secret is never in an event: events
//! name its version, and the secret itself is kept sealed beside the store.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum WebhookEvent {
    /// A tenant admin registered an endpoint for the tenant's events of `event_types`
    /// (`["*"]`: every type).
    #[serde(rename = "webhook.created")]
    Created {
        webhook_id: Uuid,
        tenant_id: Uuid,
        url: String,
        event_types: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The version of the signing secret (1 at creation; each rotation adds one).
        secret_version: u32,
        created_by: Uuid,
    },
    /// Only what changed is present.
    #[serde(rename = "webhook.updated")]
    Updated {
        webhook_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_types: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enabled: Option<bool>,
        updated_by: Uuid,
    },
    /// A new signing secret: deliveries from now on are signed with it.
    #[serde(rename = "webhook.secret_rotated")]
    SecretRotated {
        webhook_id: Uuid,
        secret_version: u32,
        rotated_by: Uuid,
    },
    /// The system turned the webhook off because its endpoint has failed every attempt since
    /// `failing_since` (longer than the operator's limit, a day by default); its pending
    /// deliveries wait, and an admin turns it on again with `webhook.updated`.
    #[serde(rename = "webhook.disabled")]
    Disabled {
        webhook_id: Uuid,
        /// Why: `failing`.
        reason: String,
        /// The first failed attempt since the last successful delivery.
        failing_since: chrono::DateTime<chrono::Utc>,
        /// The last failure, as the platform describes it (never the endpoint's own text).
        last_error: String,
    },
    /// The endpoint gets nothing more; its undelivered deliveries are dropped.
    #[serde(rename = "webhook.deleted")]
    Deleted { webhook_id: Uuid, deleted_by: Uuid },
}

impl EventKind for WebhookEvent {
    const AGGREGATE_TYPE: &'static str = "webhook";
    fn event_type(&self) -> &'static str {
        match self {
            WebhookEvent::Created { .. } => "webhook.created",
            WebhookEvent::Updated { .. } => "webhook.updated",
            WebhookEvent::SecretRotated { .. } => "webhook.secret_rotated",
            WebhookEvent::Disabled { .. } => "webhook.disabled",
            WebhookEvent::Deleted { .. } => "webhook.deleted",
        }
    }
}
