//! Personal-data sealing: each personal field of an event's data is encrypted with the data
//! key of the event's subject, bound to the event and the field, and opened on read — or
//! replaced by a marker once the key is destroyed (ADR 3).

use infra::crypto::{DataKey, ENCRYPTED_PREFIX, ERASED};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;

/// What a sealed field is bound to: its event and its name, so a value cannot be moved.
fn field_context(event_id: Uuid, field: &str) -> Vec<u8> {
    [event_id.as_bytes().as_slice(), b"/", field.as_bytes()].concat()
}

/// Whether any of `fields` holds a value (only then is the subject's key needed).
pub(crate) fn has_personal_values(data: &Value, fields: &[&str]) -> bool {
    fields
        .iter()
        .any(|field| data.get(field).is_some_and(|value| !value.is_null()))
}

/// Seals each of `fields` that holds a value.
pub(crate) fn seal_fields(
    key: &DataKey,
    event_id: Uuid,
    fields: &[&str],
    data: &mut Value,
) -> Result<(), StoreError> {
    let Value::Object(object) = data else {
        return Ok(());
    };
    for field in fields {
        if let Some(value) = object.get_mut(*field) {
            if value.is_null() {
                continue;
            }
            let plaintext =
                serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            *value = Value::String(key.encrypt(&field_context(event_id, field), &plaintext)?);
        }
    }
    Ok(())
}

/// Opens every sealed field with `key`; without a key (it was destroyed), marks them erased.
pub(crate) fn open_fields(
    key: Option<&DataKey>,
    event_id: Uuid,
    data: &mut Value,
) -> Result<(), StoreError> {
    let Value::Object(object) = data else {
        return Ok(());
    };
    for (field, value) in object.iter_mut() {
        let Value::String(text) = value else { continue };
        if !text.starts_with(ENCRYPTED_PREFIX) {
            continue;
        }
        *value = match key {
            Some(key) => {
                let plaintext = key.decrypt(&field_context(event_id, field), text)?;
                serde_json::from_slice(&plaintext).map_err(|e| {
                    StoreError::Corrupt(format!("field {field} of event {event_id}: {e}"))
                })?
            }
            None => Value::String(ERASED.to_owned()),
        };
    }
    Ok(())
}
