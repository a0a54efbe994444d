//! `GET /asyncapi.json`: the AsyncAPI 3 document of what leaves the platform (ADR 27, 28):
//! the webhook channel, one message per event type (a CloudEvent whose `data` is the type's
//! JSON Schema), and the three Standard Webhooks headers. Generated at start from the same
//! schemas `/v1/schemas/events` serves. The JetStream stream is internal and not in it.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use eventstore::contract;
use serde_json::{Map, Value, json};

/// The document, built once.
fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let schemas = contract::event_schemas();
    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut operation_messages = Vec::new();
    for schema in &schemas {
        let key = schema.event_type.clone();
        let title = schema.schema["description"].as_str().unwrap_or_default();
        messages.insert(
            key.clone(),
            json!({
                "name": schema.event_type,
                "title": format!("{} (data version {})", schema.event_type, schema.version),
                "summary": title,
                "contentType": eventstore::public::CONTENT_TYPE,
                "headers": {"$ref": "#/components/schemas/WebhookHeaders"},
                "payload": {
                    "schemaFormat": "application/schema+json;version=draft-2020-12",
                    "schema": cloud_event_schema(&schema.event_type, &schema.schema),
                },
            }),
        );
        channel_messages.insert(
            key.clone(),
            json!({"$ref": format!("#/components/messages/{key}")}),
        );
        operation_messages.push(json!({"$ref": format!("#/channels/webhook/messages/{key}")}));
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Eventra events",
            "version": "1",
            "description": "What the platform sends to other services: each event of a tenant, as a CloudEvents 1.0 document, to the tenant's webhooks (registered with POST /v1/tenants/{tenant_id}/webhooks). Every request is signed the Standard Webhooks way; see docs/webhooks.md. The NATS JetStream stream is internal and not a subscriber interface.",
        },
        "defaultContentType": eventstore::public::CONTENT_TYPE,
        "channels": {
            "webhook": {
                "address": null,
                "title": "A tenant's webhook endpoint",
                "description": "The URL a tenant admin registered. It receives the tenant's events of the types the webhook names, once per event (every attempt of one delivery carries the same webhook-id), in the order of the stream.",
                "messages": channel_messages,
            }
        },
        "operations": {
            "deliverEvent": {
                "action": "send",
                "channel": {"$ref": "#/channels/webhook"},
                "title": "Deliver an event",
                "summary": "POSTs one event to the endpoint; a 2xx answer ends the delivery, anything else is retried with backoff until the delivery is dead.",
                "messages": operation_messages,
            }
        },
        "components": {
            "messages": messages,
            "schemas": {
                "WebhookHeaders": {
                    "type": "object",
                    "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
                    "properties": {
                        "webhook-id": {"type": "string", "description": "The delivery's id: the same on every attempt, so a receiver can drop repeats."},
                        "webhook-timestamp": {"type": "string", "pattern": "^[0-9]+$", "description": "When this attempt was signed, in seconds since 1970 (refuse ones far from now)."},
                        "webhook-signature": {"type": "string", "pattern": "^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$", "description": "v1, and the base64 of HMAC-SHA256 over \"{webhook-id}.{webhook-timestamp}.{body}\", keyed with the secret's bytes (the base64 after whsec_)."},
                    },
                },
            },
        },
    })
}

/// The CloudEvent envelope of `event_type`, its `data` the type's schema.
fn cloud_event_schema(event_type: &str, data: &Value) -> Value {
    // Nested in the envelope, the data schema has no dialect or id of its own, and its
    // definitions are written in place (a `#/$defs/…` pointer would mean the document's).
    let mut data = data.clone();
    let definitions = data
        .as_object_mut()
        .and_then(|map| {
            map.remove("$schema");
            map.remove("$id");
            map.remove("$defs")
        })
        .unwrap_or(Value::Null);
    inline(&mut data, &definitions);
    json!({
        "$schema": contract::DIALECT,
        "type": "object",
        "required": ["specversion", "id", "type", "source", "subject", "time", "datacontenttype", "dataschema", "tenantid", "position", "sequence", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "format": "uuid", "description": "The event's id."},
            "type": {"const": event_type},
            "source": {"type": "string", "description": "/tenants/{tenant_id}"},
            "subject": {"type": "string", "description": "{aggregate type}/{aggregate id}"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"type": "string", "format": "uri"},
            "tenantid": {"type": "string", "format": "uuid"},
            "position": {"type": "integer", "description": "The event's place in the store's order."},
            "sequence": {"type": "integer", "description": "The version of its stream after it."},
            "correlationid": {"type": "string"},
            "causationid": {"type": "string"},
            "data": data,
        },
    })
}

/// Replaces every `{"$ref": "#/$defs/X", …}` with definition X (and the reference's own
/// keywords); the event types' definitions do not refer to themselves.
fn inline(value: &mut Value, definitions: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(str::to_owned)
                && let Some(Value::Object(definition)) = definitions.get(&name)
            {
                map.remove("$ref");
                for (key, item) in definition {
                    map.entry(key.clone()).or_insert_with(|| item.clone());
                }
            }
            for item in map.values_mut() {
                inline(item, definitions);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| inline(item, definitions)),
        _ => {}
    }
}

/// `GET /asyncapi.json`: the AsyncAPI 3 document of the webhooks.
#[utoipa::path(get, path = "/asyncapi.json", tag = "events",
    responses((status = 200, description = "the AsyncAPI 3.0 document: the webhook channel, a message per event type, the signature headers", body = Object)))]
pub async fn asyncapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
