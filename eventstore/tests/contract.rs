//! The event contract for subscribers: every event type has a JSON Schema generated from the
//! code, checked in under `docs/schemas/events/`, and every event's public form validates
//! against it, without internal fields, and without personal ones once erased.
//!
//! After changing an event type, `EVENTRA_WRITE_SCHEMAS=1 cargo test -p eventstore --test
//! contract` rewrites the checked-in schemas; review the diff like code.

#[path = "../../domain/tests/samples/mod.rs"]
mod samples;

use std::collections::BTreeSet;
use std::path::PathBuf;

use eventstore::contract::{self, EventSchema};
use proptest::prelude::*;
use samples::{every_event, serialised};
use serde_json::Value;

const ERASED: &str = "[erased]";

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas/events")
}

fn file_of(schema: &EventSchema) -> PathBuf {
    schemas_dir().join(format!("{}.v{}.json", schema.event_type, schema.version))
}

/// Every type's validator, compiled once.
fn validator(event_type: &str) -> &'static jsonschema::Validator {
    static VALIDATORS: std::sync::OnceLock<
        std::collections::HashMap<String, jsonschema::Validator>,
    > = std::sync::OnceLock::new();
    VALIDATORS
        .get_or_init(|| {
            contract::event_schemas()
                .into_iter()
                .map(|schema| {
                    let validator =
                        jsonschema::draft202012::new(&schema.schema).unwrap_or_else(|e| {
                            panic!(
                                "the schema of {} is not a valid schema: {e}",
                                schema.event_type
                            )
                        });
                    (schema.event_type, validator)
                })
                .collect()
        })
        .get(event_type)
        .unwrap_or_else(|| panic!("no schema for {event_type}"))
}

fn assert_valid(event_type: &str, data: &Value) {
    let validator = validator(event_type);
    let errors: Vec<String> = validator
        .iter_errors(data)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{event_type}: {data} does not match its schema: {errors:?}"
    );
}

#[test]
fn every_event_type_has_exactly_one_schema_and_the_same_personal_fields() {
    let schemas = contract::event_schemas();
    let typed: BTreeSet<String> = schemas.iter().map(|s| s.event_type.clone()).collect();
    assert_eq!(typed.len(), schemas.len(), "a type with two schemas");
    let sampled: BTreeSet<String> = every_event().iter().map(|e| serialised(e).0).collect();
    assert_eq!(typed, sampled);
    for event in every_event() {
        let (event_type, _) = serialised(&event);
        assert_eq!(
            contract::personal_fields(&event_type),
            event.personal_fields(),
            "{event_type}"
        );
        assert_eq!(
            contract::schema_version(&event_type),
            Some(event.schema_version()),
            "{event_type}"
        );
    }
}

#[test]
fn the_checked_in_schemas_are_the_generated_ones() {
    let schemas = contract::event_schemas();
    if std::env::var("EVENTRA_WRITE_SCHEMAS").is_ok() {
        std::fs::create_dir_all(schemas_dir()).expect("the schemas directory");
        for schema in &schemas {
            let text = serde_json::to_string_pretty(&schema.schema).expect("json") + "\n";
            std::fs::write(file_of(schema), text).expect("write a schema");
        }
    }
    let mut expected: BTreeSet<PathBuf> = BTreeSet::new();
    for schema in &schemas {
        let file = file_of(schema);
        let text = std::fs::read_to_string(&file).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run EVENTRA_WRITE_SCHEMAS=1 cargo test -p eventstore --test contract",
                file.display()
            )
        });
        let checked_in: Value = serde_json::from_str(&text).expect("a JSON schema");
        assert_eq!(
            checked_in,
            schema.schema,
            "{} differs from the generated schema: run EVENTRA_WRITE_SCHEMAS=1 cargo test -p eventstore --test contract",
            file.display()
        );
        expected.insert(file);
    }
    // Retired versions stay, frozen, older than their type's current version.
    let retired = contract::retired_schemas();
    assert!(!retired.is_empty(), "every retired schema file parses");
    for schema in retired {
        assert!(
            schema.version < contract::schema_version(&schema.event_type).unwrap_or(0),
            "{} v{} is not retired",
            schema.event_type,
            schema.version
        );
        assert_eq!(
            schema.schema["$id"],
            contract::schema_id(&schema.event_type, schema.version)
        );
        expected.insert(file_of(&schema));
    }
    let present: BTreeSet<PathBuf> = std::fs::read_dir(schemas_dir())
        .expect("the schemas directory")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    assert_eq!(present, expected, "a schema file of no event type");
}

#[test]
fn every_schema_names_itself_and_keeps_internal_fields_out() {
    for schema in contract::event_schemas() {
        let value = &schema.schema;
        assert_eq!(value["$schema"], contract::DIALECT);
        assert_eq!(
            value["$id"],
            contract::schema_id(&schema.event_type, schema.version)
        );
        let text = value.to_string();
        for field in ["password_hash", "token_hash", "refresh_token_hash"] {
            assert!(
                !text.contains(&format!("\"{field}\"")),
                "{} describes {field}",
                schema.event_type
            );
        }
        for field in contract::personal_fields(&schema.event_type) {
            let required = value["required"].as_array().cloned().unwrap_or_default();
            assert!(
                !required.iter().any(|r| r == field),
                "{}: personal {field} is required",
                schema.event_type
            );
        }
    }
}

#[test]
fn every_events_public_form_validates_and_carries_no_internal_field() {
    for event in every_event() {
        let (event_type, data) = serialised(&event);
        let public = contract::public_data(&event_type, &data, ERASED);
        assert_valid(&event_type, &public);
        let text = public.to_string();
        for secret in ["$argon2id", "\"token_hash\"", "\"refresh_token_hash\""] {
            assert!(!text.contains(secret), "{event_type}: {text}");
        }
        // The subject erased: personal fields read as the marker, and go.
        let mut erased = data.clone();
        for field in event.personal_fields() {
            if let Some(value) = erased.get_mut(*field)
                && !value.is_null()
            {
                *value = Value::String(ERASED.into());
            }
        }
        let public = contract::public_data(&event_type, &erased, ERASED);
        assert_valid(&event_type, &public);
        for field in event.personal_fields() {
            // A cleared value (`null`) holds nothing personal and says what happened.
            assert!(
                public.get(*field).is_none_or(Value::is_null),
                "{event_type}: {field} stayed"
            );
        }
        assert!(!public.to_string().contains(ERASED));
    }
}

/// Any text where the samples have text, any id where they have ids, any optional field
/// present or not: the public form still validates (the event read back through its type
/// first, so every variation is a real event).
fn varied(value: &Value, texts: &[String], drop: &[bool], at: &mut usize) -> Value {
    *at += 1;
    match value {
        Value::String(text) if uuid::Uuid::try_parse(text).is_err() && !looks_fixed(text) => {
            Value::String(texts[*at % texts.len()].clone())
        }
        Value::Object(map) => {
            let dropping = drop[*at % drop.len()];
            Value::Object(
                map.iter()
                    .filter(|(key, _)| !(dropping && optional(key)))
                    .map(|(key, item)| (key.clone(), varied(item, texts, drop, at)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| varied(item, texts, drop, at))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Texts with a fixed vocabulary (enumerations, times) keep their sample value.
fn looks_fixed(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
        || chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

fn optional(key: &str) -> bool {
    [
        "display_name",
        "phone",
        "locale",
        "name",
        "description",
        "user_agent",
        "email_verification",
        "source",
        "errors",
        "team_ids",
    ]
    .contains(&key)
}

proptest! {
    #[test]
    fn generated_events_validate_against_their_schemas(
        texts in proptest::collection::vec("\\PC{0,40}", 1..8),
        drop in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        for event in every_event() {
            let (event_type, data) = serialised(&event);
            let mut at = 0;
            let candidate = varied(&data, &texts, &drop, &mut at);
            // Only variations the event type itself accepts are events.
            let envelope = serde_json::json!({"type": event_type, "data": candidate});
            let Some(data) = read_back(&event, envelope) else { continue };
            let public = contract::public_data(&event_type, &data, ERASED);
            let validator = validator(&event_type);
            prop_assert!(validator.is_valid(&public), "{}: {}", event_type, public);
        }
    }
}

/// The variation read through the event's own type and written again, if it is one.
fn read_back(event: &domain::DomainEvent, envelope: Value) -> Option<Value> {
    use domain::DomainEvent as E;
    use domain::event::{
        ImportEvent, InvitationEvent, SessionEvent, TeamEvent, TenantEvent, UserEvent, WebhookEvent,
    };
    let value = match event {
        E::Tenant { .. } => round_trip::<TenantEvent>(envelope),
        E::User { .. } => round_trip::<UserEvent>(envelope),
        E::Session { .. } => round_trip::<SessionEvent>(envelope),
        E::Team { .. } => round_trip::<TeamEvent>(envelope),
        E::Invitation { .. } => round_trip::<InvitationEvent>(envelope),
        E::Import { .. } => round_trip::<ImportEvent>(envelope),
        E::Webhook { .. } => round_trip::<WebhookEvent>(envelope),
    }?;
    Some(value["data"].clone())
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(envelope: Value) -> Option<Value> {
    let event: T = serde_json::from_value(envelope).ok()?;
    serde_json::to_value(event).ok()
}
