//! The public form of a stored event (ADR 0027): a CloudEvents 1.0 structured JSON document
//! whose `data` is the event's public data (`eventstore::contract`): no internal field ever, no
//! personal field once its subject is erased. Webhooks deliver it; `docs/events.md` and the
//! JSON Schemas at `/v1/schemas/events` describe it.

use chrono::SecondsFormat;
use infra::crypto::ERASED;
use serde_json::{Map, Value, json};

use crate::contract;
use crate::recorded::RecordedEvent;

/// The CloudEvents version of the documents.
pub const SPEC_VERSION: &str = "1.0";

/// The media type of a structured CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// Where the schema of `event_type` at `version` is served, under `base_url` (the command
/// API's public address, `PUBLIC_URL`).
pub fn schema_url(base_url: &str, event_type: &str, version: i32) -> String {
    format!(
        "{}/v1/schemas/events/{event_type}/{version}",
        base_url.trim_end_matches('/')
    )
}

/// The event as a subscriber sees it. `event.data` must be read through the store (upcast
/// and opened, or marked erased).
pub fn cloud_event(event: &RecordedEvent, base_url: &str) -> Value {
    let mut document = Map::new();
    let mut put = |key: &str, value: Value| {
        document.insert(key.to_owned(), value);
    };
    put("specversion", json!(SPEC_VERSION));
    put("id", json!(event.event_id));
    put("type", json!(event.event_type));
    put("source", json!(format!("/tenants/{}", event.tenant_id)));
    put(
        "subject",
        json!(format!("{}/{}", event.aggregate_type, event.aggregate_id)),
    );
    put(
        "time",
        json!(
            event
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        ),
    );
    put("datacontenttype", json!("application/json"));
    put(
        "dataschema",
        json!(schema_url(
            base_url,
            &event.event_type,
            event.schema_version
        )),
    );
    put("tenantid", json!(event.tenant_id));
    put("position", json!(event.position));
    put("sequence", json!(event.sequence));
    if let Some(correlation) = &event.metadata.correlation_id {
        put("correlationid", json!(correlation));
    }
    if let Some(causation) = &event.metadata.causation_id {
        put("causationid", json!(causation));
    }
    put(
        "data",
        contract::public_data(&event.event_type, &event.data, ERASED),
    );
    Value::Object(document)
}
