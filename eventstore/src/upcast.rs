//! Upcasting: the one place where stored events of an older schema version are brought to
//! the current shape before anything reads them. Every event type and its versions are
//! documented in docs/events.md; a new version adds a step here, never an edit in place.

use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UpcastError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error(
        "{event_type} version {version} is newer than this build understands (current {current})"
    )]
    FutureVersion {
        event_type: String,
        version: i32,
        current: i32,
    },
}

/// The schema version this build writes for each event type.
pub fn current_version(event_type: &str) -> Option<i32> {
    match event_type {
        "tenant.created"
        | "tenant.rate_limit_changed"
        | "tenant.settings_changed"
        | "user.created"
        | "tenant.member_joined"
        | "user.login_failed"
        | "tenant.member_role_changed"
        | "user.deactivated"
        | "user.reactivated"
        | "tenant.member_removed"
        | "user.platform_admin_granted"
        | "user.deleted"
        | "user.deletion_scheduled"
        | "user.deletion_cancelled"
        | "user.password_changed"
        | "user.password_reset_requested"
        | "user.password_reset"
        | "user.email_change_requested"
        | "user.email_verified"
        | "user.email_changed"
        | "user.locked"
        | "user.unlocked"
        | "user.logged_in"
        | "user.session_refreshed"
        | "user.session_revoked"
        | "team.created"
        | "team.updated"
        | "team.deleted"
        | "team.members_added"
        | "team.members_removed"
        | "invitation.created"
        | "invitation.resent"
        | "invitation.revoked"
        | "invitation.accepted"
        | "invitation.expired"
        | "import.started"
        | "import.progressed"
        | "import.completed"
        | "import.failed"
        | "import.cancelled"
        | "webhook.created"
        | "webhook.updated"
        | "webhook.secret_rotated"
        | "webhook.disabled"
        | "webhook.deleted" => Some(1),
        "user.profile_updated" => Some(2),
        _ => None,
    }
}

/// Brings `data` of `event_type` at `version` to the current version, step by step.
pub fn upcast(event_type: &str, version: i32, data: Value) -> Result<(i32, Value), UpcastError> {
    let current = current_version(event_type)
        .ok_or_else(|| UpcastError::UnknownType(event_type.to_owned()))?;
    if version > current {
        return Err(UpcastError::FutureVersion {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    // Each step takes version n to n + 1.
    let (mut version, mut data) = (version, data);
    while version < current {
        data = match (event_type, version) {
            ("user.profile_updated", 1) => profile_updated_v1_to_v2(data),
            _ => data,
        };
        version += 1;
    }
    Ok((version, data))
}

/// `user.profile_updated` v1 → v2: v1 gave the fields set (absent when unchanged) and a
/// `cleared` list, clearing winning over a value given in the same event; v2 names the fields
/// changed in `changed` and gives each with its new value, `null` when cleared. Values move
/// nowhere (a sealed value stays sealed under its own name): only `cleared` and the values
/// it overrides go, and `null`s appear.
fn profile_updated_v1_to_v2(mut data: Value) -> Value {
    let Value::Object(object) = &mut data else {
        return data;
    };
    let cleared: Vec<Value> = match object.remove("cleared") {
        Some(Value::Array(cleared)) => cleared,
        _ => Vec::new(),
    };
    let mut changed = Vec::new();
    for field in ["display_name", "phone", "locale"] {
        if cleared.iter().any(|name| name.as_str() == Some(field)) {
            object.insert(field.to_owned(), Value::Null);
            changed.push(Value::from(field));
        } else if object.get(field).is_some_and(|value| !value.is_null()) {
            changed.push(Value::from(field));
        } else {
            object.remove(field);
        }
    }
    object.insert("changed".to_owned(), Value::Array(changed));
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_versions_pass_through_unchanged() {
        let data = serde_json::json!({"user_id": "x"});
        assert_eq!(upcast("user.deleted", 1, data.clone()), Ok((1, data)));
    }

    #[test]
    fn an_older_version_is_brought_up_to_the_current_one() {
        let data = serde_json::json!({"user_id": "x"});
        assert_eq!(upcast("user.deleted", 0, data.clone()), Ok((1, data)));
    }

    #[test]
    fn a_v1_profile_update_names_what_it_set_and_clearing_wins() {
        let v1 = serde_json::json!({
            "user_id": "u", "display_name": "pii:v1:sealed", "locale": "de-DE",
            "phone": "pii:v1:other", "cleared": ["phone"], "updated_by": "a"
        });
        assert_eq!(
            upcast("user.profile_updated", 1, v1),
            Ok((
                2,
                serde_json::json!({
                    "user_id": "u", "display_name": "pii:v1:sealed", "locale": "de-DE",
                    "phone": null, "changed": ["display_name", "phone", "locale"],
                    "updated_by": "a"
                })
            ))
        );
        let only_phone =
            serde_json::json!({"user_id": "u", "phone": "pii:v1:p", "updated_by": "a"});
        assert_eq!(
            upcast("user.profile_updated", 1, only_phone).map(|(_, data)| data),
            Ok(serde_json::json!({
                "user_id": "u", "phone": "pii:v1:p", "changed": ["phone"], "updated_by": "a"
            }))
        );
        // A v2 event passes untouched.
        let v2 = serde_json::json!({"user_id": "u", "changed": ["phone"], "phone": null, "updated_by": "a"});
        assert_eq!(upcast("user.profile_updated", 2, v2.clone()), Ok((2, v2)));
    }

    #[test]
    fn versions_from_the_future_and_unknown_types_are_refused() {
        assert!(matches!(
            upcast("user.created", 2, Value::Null),
            Err(UpcastError::FutureVersion { .. })
        ));
        assert!(matches!(
            upcast("user.teleported", 1, Value::Null),
            Err(UpcastError::UnknownType(_))
        ));
    }
}
