//! The activity log's vocabulary: the actions the `activity` projection writes and the query
//! API filters by.

/// Every action of `rm_activity`.
pub const ACTIONS: &[&str] = &[
    "signed_up",
    "logged_in",
    "login_failed",
    "profile_updated",
    "role_changed",
    "deactivated",
    "reactivated",
    "session_revoked",
    "erased",
    "platform_admin_granted",
    "invitation_accepted",
    "team_joined",
    "team_left",
    "deletion_scheduled",
    "deletion_cancelled",
    "password_changed",
    "locked",
    "unlocked",
];
