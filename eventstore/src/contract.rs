//! The event contract for subscribers (ADR 0027): which fields of each event leave the
//! system, which are personal, and the JSON Schema (2020-12) of each type's public `data`,
//! generated from the event types themselves — so the schema cannot drift from the code.
//!
//! The public `data` of an event is its stored `data` without the [`internal_fields`]
//! (credential and token hashes, which never leave the system) and, once its subject is
//! erased, without its [`personal_fields`]. The schemas say so: internal fields are not in
//! them, personal fields are never required.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use domain::event::{
    ImportEvent, InvitationEvent, SessionEvent, TeamEvent, TenantEvent, UserEvent, WebhookEvent,
};

/// The JSON Schema dialect of every event schema.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Fields of an event's `data` that never leave the system: dotted paths (`a.b` is field `b`
/// of the object in field `a`).
pub fn internal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "user.created" => &["password_hash", "email_verification.token_hash"],
        "user.password_changed" | "user.password_reset" => &["password_hash"],
        "user.password_reset_requested"
        | "user.email_change_requested"
        | "invitation.created"
        | "invitation.resent" => &["token_hash"],
        "user.logged_in" | "user.session_refreshed" => &["refresh_token_hash"],
        _ => &[],
    }
}

/// The personal fields of an event type (sealed with the subject's key; absent from the
/// public form once the subject is erased). The same lists as each event's
/// [`EventKind::personal_fields`](domain::event::EventKind::personal_fields), by type name.
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "user.created" => &["email", "display_name", "password_hash"],
        "user.profile_updated" => &["display_name", "phone"],
        "user.password_changed" | "user.password_reset" => &["password_hash"],
        "user.email_change_requested" => &["new_email"],
        "user.email_changed" => &["old_email", "email"],
        "user.logged_in" => &["user_agent"],
        "invitation.created" => &["email"],
        _ => &[],
    }
}

/// The schema version of each event type's `data`.
pub fn schema_version(event_type: &str) -> Option<i32> {
    event_schemas()
        .into_iter()
        .find(|schema| schema.event_type == event_type)
        .map(|schema| schema.version)
}

/// The stable identifier of a type's schema (`$id`): it names the schema wherever it is
/// served; `GET /v1/schemas/events/{type}/{version}` serves it.
pub fn schema_id(event_type: &str, version: i32) -> String {
    format!("urn:eventra:event:{event_type}:v{version}")
}

/// One event type's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSchema {
    pub event_type: String,
    pub version: i32,
    pub schema: Value,
}

/// The schema of every event type's public `data`, in the order of the event types.
pub fn event_schemas() -> Vec<EventSchema> {
    let mut schemas = Vec::new();
    for root in [
        root_of::<TenantEvent>(),
        root_of::<UserEvent>(),
        root_of::<SessionEvent>(),
        root_of::<TeamEvent>(),
        root_of::<InvitationEvent>(),
        root_of::<ImportEvent>(),
        root_of::<WebhookEvent>(),
    ] {
        let definitions = root.get("$defs").cloned().unwrap_or_else(|| json!({}));
        let variants = root
            .get("oneOf")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for variant in variants {
            let Some(event_type) = variant
                .pointer("/properties/type/const")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                continue;
            };
            let data = variant
                .pointer("/properties/data")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            let Some(version) = crate::upcast::current_version(&event_type) else {
                continue;
            };
            schemas.push(EventSchema {
                schema: public_schema(&event_type, version, &variant, data, &definitions),
                event_type,
                version,
            });
        }
    }
    schemas
}

/// Versions no longer written, with their schemas frozen as they were published. A stored
/// event of such a version is upcast on read (`crate::upcast`), so subscribers only ever get
/// the current version; the old schema stays served at its URL for whoever recorded it.
const RETIRED: &[(&str, i32, &str)] = &[(
    "user.profile_updated",
    1,
    include_str!("../../docs/schemas/events/user.profile_updated.v1.json"),
)];

/// The schemas of retired versions (see [`RETIRED`]).
pub fn retired_schemas() -> Vec<EventSchema> {
    RETIRED
        .iter()
        .filter_map(|(event_type, version, text)| {
            Some(EventSchema {
                event_type: (*event_type).to_owned(),
                version: *version,
                schema: serde_json::from_str(text).ok()?,
            })
        })
        .collect()
}

/// Every schema ever published: the current version of every type, then the retired ones.
pub fn all_schemas() -> Vec<EventSchema> {
    let mut schemas = event_schemas();
    schemas.extend(retired_schemas());
    schemas
}

fn root_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema: Schema = generator.into_root_schema_for::<T>();
    schema.to_value()
}

/// A standalone schema of one type's public `data`: its own `$id`, title and description,
/// the definitions it refers to, internal fields taken out, personal fields optional.
fn public_schema(
    event_type: &str,
    version: i32,
    variant: &Value,
    data: Value,
    definitions: &Value,
) -> Value {
    let mut schema = Map::new();
    schema.insert("$schema".into(), json!(DIALECT));
    schema.insert("$id".into(), json!(schema_id(event_type, version)));
    schema.insert(
        "title".into(),
        json!(format!("{event_type} (version {version})")),
    );
    let personal = personal_fields(event_type);
    let mut description = variant
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("The data of a `{event_type}` event."));
    if personal
        .iter()
        .any(|f| !internal_fields(event_type).contains(f))
    {
        description.push_str(
            " Personal fields are absent once the person is erased, so none is required.",
        );
    }
    schema.insert("description".into(), json!(description));
    if let Value::Object(data) = data {
        for (key, value) in data {
            schema.insert(key, value);
        }
    }
    let mut schema = Value::Object(schema);
    let mut definitions = definitions.clone();
    for path in internal_fields(event_type) {
        match path.split_once('.') {
            None => remove_property(&mut schema, path),
            Some((outer, inner)) => {
                if let Some(name) = schema
                    .pointer(&format!("/properties/{outer}"))
                    .and_then(definition_name)
                    && let Some(definition) = definitions.get_mut(&name)
                {
                    remove_property(definition, inner);
                }
            }
        }
    }
    for field in personal {
        if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| r.as_str() != Some(field));
        }
    }
    let used = used_definitions(&schema, &definitions);
    if !used.is_empty()
        && let Value::Object(map) = &mut schema
    {
        map.insert("$defs".into(), Value::Object(used));
    }
    schema
}

/// Takes `field` out of an object schema's properties and required list.
fn remove_property(schema: &mut Value, field: &str) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.remove(field);
    }
    if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| r.as_str() != Some(field));
    }
}

/// The definition a property's schema refers to (directly, or as the non-null branch of an
/// optional value).
fn definition_name(property: &Value) -> Option<String> {
    let reference = property.get("$ref").and_then(Value::as_str).or_else(|| {
        ["anyOf", "oneOf"].iter().find_map(|key| {
            property
                .get(key)?
                .as_array()?
                .iter()
                .find_map(|branch| branch.get("$ref").and_then(Value::as_str))
        })
    })?;
    reference.strip_prefix("#/$defs/").map(str::to_owned)
}

/// The definitions `schema` refers to, directly or through other definitions.
fn used_definitions(schema: &Value, definitions: &Value) -> Map<String, Value> {
    let mut used = Map::new();
    let mut pending: Vec<String> = Vec::new();
    collect_references(schema, &mut pending);
    while let Some(name) = pending.pop() {
        if used.contains_key(&name) {
            continue;
        }
        if let Some(definition) = definitions.get(&name) {
            collect_references(definition, &mut pending);
            used.insert(name, definition.clone());
        }
    }
    used
}

fn collect_references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref"
                    && let Some(name) = item.as_str().and_then(|r| r.strip_prefix("#/$defs/"))
                {
                    found.push(name.to_owned());
                } else {
                    collect_references(item, found);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_references(item, found)),
        _ => {}
    }
}

/// The public form of an event's `data`: internal fields taken out, and each personal
/// field whose value is `erased_marker` (its subject's key is gone) too.
pub fn public_data(event_type: &str, data: &Value, erased_marker: &str) -> Value {
    let mut data = data.clone();
    for path in internal_fields(event_type) {
        match path.split_once('.') {
            None => {
                if let Some(map) = data.as_object_mut() {
                    map.remove(*path);
                }
            }
            Some((outer, inner)) => {
                if let Some(map) = data.get_mut(outer).and_then(Value::as_object_mut) {
                    map.remove(inner);
                }
            }
        }
    }
    if let Some(map) = data.as_object_mut() {
        for field in personal_fields(event_type) {
            if map.get(*field).and_then(Value::as_str) == Some(erased_marker) {
                map.remove(*field);
            }
        }
    }
    data
}
