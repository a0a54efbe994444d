//! Events of an invitation's stream (aggregate id = invitation id).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventKind;
use crate::Role;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum InvitationEvent {
    /// An admin invited an address. `user_id` is the account the invitation is for (the
    /// removed member's, or the id a new account will take); the address is sealed with that
    /// account's data key, so erasing the account makes it unreadable here too. Only the
    /// token's hash is stored; the token itself goes out in the email.
    #[serde(rename = "invitation.created")]
    Created {
        invitation_id: Uuid,
        tenant_id: Uuid,
        user_id: Uuid,
        email: String,
        role: Role,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        team_ids: Vec<Uuid>,
        token_hash: String,
        expires_at: DateTime<Utc>,
        invited_by: Uuid,
        /// The bulk import that created the account: accepting sets its first password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        import_id: Option<Uuid>,
    },
    /// A new token and expiry; the old token no longer works.
    #[serde(rename = "invitation.resent")]
    Resent {
        invitation_id: Uuid,
        token_hash: String,
        expires_at: DateTime<Utc>,
        resent_by: Uuid,
    },
    #[serde(rename = "invitation.revoked")]
    Revoked {
        invitation_id: Uuid,
        revoked_by: Uuid,
    },
    /// The holder of the token accepted: `user_id` joined the tenant (a new account when
    /// `new_account`).
    #[serde(rename = "invitation.accepted")]
    Accepted {
        invitation_id: Uuid,
        user_id: Uuid,
        new_account: bool,
    },
    /// Appended by the system once `expires_at` passed with the invitation still pending.
    #[serde(rename = "invitation.expired")]
    Expired {
        invitation_id: Uuid,
        expires_at: DateTime<Utc>,
    },
}

impl EventKind for InvitationEvent {
    const AGGREGATE_TYPE: &'static str = "invitation";
    fn event_type(&self) -> &'static str {
        match self {
            InvitationEvent::Created { .. } => "invitation.created",
            InvitationEvent::Resent { .. } => "invitation.resent",
            InvitationEvent::Revoked { .. } => "invitation.revoked",
            InvitationEvent::Accepted { .. } => "invitation.accepted",
            InvitationEvent::Expired { .. } => "invitation.expired",
        }
    }
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            InvitationEvent::Created { .. } => &["email"],
            _ => &[],
        }
    }
}
