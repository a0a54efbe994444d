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
        | "user.profile_updated"
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
        | "webhook.deleted" => Some(1),
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
    // Each step takes version n to n + 1. None exist yet: every type is at version 1.
    let (mut version, data) = (version, data);
    while version < current {
        version += 1;
    }
    Ok((version, data))
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
