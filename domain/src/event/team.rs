//! Events of a team's stream (aggregate id = team id).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventKind;

/// Why members left a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TeamDeparture {
    /// An admin took them out of the team.
    #[default]
    Removed,
    /// They stopped being members of the tenant (removed, left or erased).
    LeftTenant,
}

impl TeamDeparture {
    pub fn as_str(&self) -> &'static str {
        match self {
            TeamDeparture::Removed => "removed",
            TeamDeparture::LeftTenant => "left_tenant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum TeamEvent {
    #[serde(rename = "team.created")]
    Created {
        team_id: Uuid,
        tenant_id: Uuid,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        created_by: Uuid,
    },
    /// Only what changed is present; an empty description clears it.
    #[serde(rename = "team.updated")]
    Updated {
        team_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        updated_by: Uuid,
    },
    #[serde(rename = "team.deleted")]
    Deleted { team_id: Uuid, deleted_by: Uuid },
    /// Members who were not in the team before, in the order they were given.
    #[serde(rename = "team.members_added")]
    MembersAdded {
        team_id: Uuid,
        user_ids: Vec<Uuid>,
        added_by: Uuid,
    },
    #[serde(rename = "team.members_removed")]
    MembersRemoved {
        team_id: Uuid,
        user_ids: Vec<Uuid>,
        removed_by: Uuid,
        #[serde(default)]
        reason: TeamDeparture,
    },
}

impl EventKind for TeamEvent {
    const AGGREGATE_TYPE: &'static str = "team";
    fn event_type(&self) -> &'static str {
        match self {
            TeamEvent::Created { .. } => "team.created",
            TeamEvent::Updated { .. } => "team.updated",
            TeamEvent::Deleted { .. } => "team.deleted",
            TeamEvent::MembersAdded { .. } => "team.members_added",
            TeamEvent::MembersRemoved { .. } => "team.members_removed",
        }
    }
}
