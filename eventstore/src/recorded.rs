//! The stored event and its published envelope.

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{DomainEvent, InvitationEvent, SessionEvent, TeamEvent, TenantEvent, UserEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::order::Order;

/// Who and what caused an event; stored in the `metadata` column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The user who acted (the envelope's `userId`); none for anonymous signups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The service that recorded the event.
    pub source: String,
    /// Whose data key encrypts this event's personal fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_subject: Option<Uuid>,
}

/// An event as stored: `data` already upcast and decrypted (or marked erased).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: i64,
    /// The id of the transaction that appended the event: with `position`, the order in
    /// which events are published (`(transaction_id, position)`, see ADR 2).
    pub transaction_id: i64,
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub sequence: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: EventMetadata,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
#[error("event {event_id} ({event_type}) does not decode: {reason}")]
pub struct DecodeError {
    pub event_id: Uuid,
    pub event_type: String,
    pub reason: String,
}

impl RecordedEvent {
    /// The envelope consumers see: the fields of the published contract.
    pub fn envelope(&self) -> Value {
        json!({
            "id": self.event_id,
            "type": self.event_type,
            "timestamp": self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "version": self.schema_version,
            "source": self.metadata.source,
            "tenantId": self.tenant_id,
            "userId": self.metadata.actor_id,
            "aggregateType": self.aggregate_type,
            "aggregateId": self.aggregate_id,
            "sequence": self.sequence,
            "position": self.position,
            "correlationId": self.metadata.correlation_id,
            "causationId": self.metadata.causation_id,
            "requestId": self.metadata.request_id,
            "dataSubject": self.metadata.data_subject,
            "data": self.data,
        })
    }

    /// Where the event stands in publication order.
    pub fn order(&self) -> Order {
        Order::new(self.transaction_id, self.position)
    }

    /// Reads an envelope back (as published by the relay). `transaction_id` travels in a
    /// message header, not in the envelope.
    pub fn from_envelope(envelope: &Value, transaction_id: i64) -> Result<Self, String> {
        let text = |field: &str| envelope[field].as_str().map(str::to_owned);
        let id = |field: &str| {
            text(field)
                .and_then(|t| Uuid::try_parse(&t).ok())
                .ok_or_else(|| format!("envelope field {field} is missing or not an id"))
        };
        let optional_id = |field: &str| text(field).and_then(|t| Uuid::try_parse(&t).ok());
        let number = |field: &str| {
            envelope[field]
                .as_i64()
                .ok_or_else(|| format!("envelope field {field} is missing or not a number"))
        };
        let occurred_at = text("timestamp")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or("envelope field timestamp is missing or not a time")?;
        let version = i32::try_from(number("version")?).map_err(|e| e.to_string())?;
        if !envelope["data"].is_object() {
            return Err("envelope field data is not an object".into());
        }
        let event_type = text("type").ok_or("envelope field type is missing")?;
        // A message published before an upgrade carries its older version: the same
        // upcasting as a read from the store.
        let (version, data) = crate::upcast::upcast(&event_type, version, envelope["data"].clone())
            .map_err(|e| e.to_string())?;
        Ok(RecordedEvent {
            position: number("position")?,
            transaction_id,
            event_id: id("id")?,
            tenant_id: id("tenantId")?,
            aggregate_type: text("aggregateType")
                .ok_or("envelope field aggregateType is missing")?,
            aggregate_id: id("aggregateId")?,
            sequence: number("sequence")?,
            event_type,
            schema_version: version,
            data,
            metadata: EventMetadata {
                actor_id: optional_id("userId"),
                correlation_id: text("correlationId"),
                causation_id: text("causationId"),
                request_id: text("requestId"),
                source: text("source").unwrap_or_default(),
                data_subject: optional_id("dataSubject"),
            },
            occurred_at,
        })
    }

    /// The typed domain event.
    pub fn to_domain(&self) -> Result<DomainEvent, DecodeError> {
        let tagged = json!({"type": self.event_type, "data": self.data});
        let error = |e: serde_json::Error| DecodeError {
            event_id: self.event_id,
            event_type: self.event_type.clone(),
            reason: e.to_string(),
        };
        Ok(match self.aggregate_type.as_str() {
            "tenant" => DomainEvent::Tenant {
                tenant_id: self.aggregate_id,
                event: serde_json::from_value::<TenantEvent>(tagged).map_err(error)?,
            },
            "user" => DomainEvent::User {
                user_id: self.aggregate_id,
                event: serde_json::from_value::<UserEvent>(tagged).map_err(error)?,
            },
            "session" => DomainEvent::Session {
                session_id: self.aggregate_id,
                event: serde_json::from_value::<SessionEvent>(tagged).map_err(error)?,
            },
            "team" => DomainEvent::Team {
                team_id: self.aggregate_id,
                event: serde_json::from_value::<TeamEvent>(tagged).map_err(error)?,
            },
            "invitation" => DomainEvent::Invitation {
                invitation_id: self.aggregate_id,
                event: serde_json::from_value::<InvitationEvent>(tagged).map_err(error)?,
            },
            "import" => DomainEvent::Import {
                import_id: self.aggregate_id,
                event: serde_json::from_value::<domain::ImportEvent>(tagged).map_err(error)?,
            },
            "webhook" => DomainEvent::Webhook {
                webhook_id: self.aggregate_id,
                event: serde_json::from_value::<domain::WebhookEvent>(tagged).map_err(error)?,
            },
            other => {
                return Err(DecodeError {
                    event_id: self.event_id,
                    event_type: self.event_type.clone(),
                    reason: format!("unknown aggregate type {other}"),
                });
            }
        })
    }
}
