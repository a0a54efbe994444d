//! The team aggregate: a named group of a tenant's members.
//!
//! Who may be in a team is decided against the tenant's membership view (only current
//! members), under the tenant's membership lock; a member who leaves the tenant leaves its
//! teams in the same transaction ([`departures`]), so no team ever holds someone who is not
//! a member of the tenant.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::event::{TeamDeparture, TeamEvent};
use crate::members::TenantMembers;
use crate::values::{TeamDescription, TeamName};
use crate::{Context, DomainError};

/// The most members one request may add.
pub const MAX_MEMBERS_PER_REQUEST: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Team {
    pub team_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub name: String,
    pub description: Option<String>,
    pub members: BTreeSet<Uuid>,
    pub deleted: bool,
    /// The number of events applied: the stream's version.
    pub version: i64,
}

/// A new team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTeam {
    pub team_id: Uuid,
    pub tenant_id: Uuid,
    pub name: TeamName,
    pub description: Option<TeamDescription>,
}

/// A change of name or description; `None` keeps a field, an empty description clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamChanges {
    pub name: Option<TeamName>,
    pub description: Option<TeamDescription>,
}

impl Team {
    /// Created, not deleted.
    pub fn exists(&self) -> bool {
        self.team_id.is_some() && !self.deleted
    }

    pub fn apply(&mut self, event: &TeamEvent) {
        match event {
            TeamEvent::Created {
                team_id,
                tenant_id,
                name,
                description,
                ..
            } => {
                self.team_id = Some(*team_id);
                self.tenant_id = Some(*tenant_id);
                self.name.clone_from(name);
                self.description.clone_from(description);
            }
            TeamEvent::Updated {
                name, description, ..
            } => {
                if let Some(name) = name {
                    self.name.clone_from(name);
                }
                if let Some(description) = description {
                    self.description = (!description.is_empty()).then(|| description.clone());
                }
            }
            TeamEvent::Deleted { .. } => {
                self.deleted = true;
                self.members.clear();
            }
            TeamEvent::MembersAdded { user_ids, .. } => self.members.extend(user_ids),
            TeamEvent::MembersRemoved { user_ids, .. } => {
                for user_id in user_ids {
                    self.members.remove(user_id);
                }
            }
        }
        self.version += 1;
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a TeamEvent>) -> Self {
        let mut team = Team::default();
        for event in events {
            team.apply(event);
        }
        team
    }

    /// The team's id, if it exists in the tenant `members` describes.
    fn require_in(&self, members: &TenantMembers) -> Result<Uuid, DomainError> {
        match self.team_id {
            Some(team_id) if self.exists() && self.tenant_id == members.tenant_id => Ok(team_id),
            _ => Err(DomainError::TeamNotFound),
        }
    }
}

/// A tenant admin creates a team.
pub fn create(
    members: &TenantMembers,
    team: &Team,
    command: CreateTeam,
    context: &Context,
) -> Result<Vec<TeamEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    if members.tenant_id != Some(command.tenant_id) {
        return Err(DomainError::TenantNotFound);
    }
    if team.team_id.is_some() {
        return Err(DomainError::TeamAlreadyExists);
    }
    Ok(vec![TeamEvent::Created {
        team_id: command.team_id,
        tenant_id: command.tenant_id,
        name: command.name.into_inner(),
        description: command
            .description
            .map(TeamDescription::into_inner)
            .filter(|d| !d.is_empty()),
        created_by: actor,
    }])
}

/// A tenant admin renames or describes a team; what does not change is not recorded.
pub fn update(
    members: &TenantMembers,
    team: &Team,
    changes: TeamChanges,
    context: &Context,
) -> Result<Vec<TeamEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    let team_id = team.require_in(members)?;
    let name = changes
        .name
        .map(TeamName::into_inner)
        .filter(|name| *name != team.name);
    let description = changes
        .description
        .map(TeamDescription::into_inner)
        .filter(|d| team.description.as_deref().unwrap_or("") != d);
    if name.is_none() && description.is_none() {
        return Ok(Vec::new());
    }
    Ok(vec![TeamEvent::Updated {
        team_id,
        name,
        description,
        updated_by: actor,
    }])
}

/// A tenant admin deletes a team; its members stay members of the tenant.
pub fn delete(
    members: &TenantMembers,
    team: &Team,
    context: &Context,
) -> Result<Vec<TeamEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    let team_id = team.require_in(members)?;
    Ok(vec![TeamEvent::Deleted {
        team_id,
        deleted_by: actor,
    }])
}

/// A tenant admin adds members: one `team.members_added` with those not already in (in the
/// order given, without repeats), or nothing. Any id that is not a current member of the
/// tenant refuses the whole request.
pub fn add_members(
    members: &TenantMembers,
    team: &Team,
    user_ids: &[Uuid],
    context: &Context,
) -> Result<Vec<TeamEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    let team_id = team.require_in(members)?;
    if user_ids.is_empty() {
        return Err(DomainError::Invalid(
            "user_ids must name at least one user".into(),
        ));
    }
    if user_ids.len() > MAX_MEMBERS_PER_REQUEST {
        return Err(DomainError::Invalid(format!(
            "user_ids may name at most {MAX_MEMBERS_PER_REQUEST} users"
        )));
    }
    let unknown: BTreeSet<Uuid> = user_ids
        .iter()
        .filter(|id| !members.members.contains_key(id))
        .copied()
        .collect();
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(Uuid::to_string).collect();
        return Err(DomainError::Invalid(format!(
            "not members of this tenant: {}",
            list.join(", ")
        )));
    }
    let mut seen = BTreeSet::new();
    let added: Vec<Uuid> = user_ids
        .iter()
        .filter(|id| !team.members.contains(id) && seen.insert(**id))
        .copied()
        .collect();
    if added.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![TeamEvent::MembersAdded {
        team_id,
        user_ids: added,
        added_by: actor,
    }])
}

/// A tenant admin takes one member out of a team.
pub fn remove_member(
    members: &TenantMembers,
    team: &Team,
    user_id: Uuid,
    context: &Context,
) -> Result<Vec<TeamEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    let team_id = team.require_in(members)?;
    if !team.members.contains(&user_id) {
        return Err(DomainError::NotInTeam);
    }
    Ok(vec![TeamEvent::MembersRemoved {
        team_id,
        user_ids: vec![user_id],
        removed_by: actor,
        reason: TeamDeparture::Removed,
    }])
}

/// What a member's departure from the tenant does to the teams they are in: each of these
/// teams records them leaving. The teams are the ones the membership view lists for them.
pub fn departures(teams: &[Team], user_id: Uuid, actor: Uuid) -> Vec<(Uuid, Vec<TeamEvent>)> {
    teams
        .iter()
        .filter(|team| team.exists() && team.members.contains(&user_id))
        .filter_map(|team| {
            let team_id = team.team_id?;
            Some((
                team_id,
                vec![TeamEvent::MembersRemoved {
                    team_id,
                    user_ids: vec![user_id],
                    removed_by: actor,
                    reason: TeamDeparture::LeftTenant,
                }],
            ))
        })
        .collect()
}

/// Invited teams that still exist, as an accepted invitation adds the new member to them.
pub fn joined_by_invitation(
    teams: &[Team],
    user_id: Uuid,
    actor: Uuid,
) -> Vec<(Uuid, Vec<TeamEvent>)> {
    teams
        .iter()
        .filter(|team| team.exists() && !team.members.contains(&user_id))
        .filter_map(|team| {
            let team_id = team.team_id?;
            Some((
                team_id,
                vec![TeamEvent::MembersAdded {
                    team_id,
                    user_ids: vec![user_id],
                    added_by: actor,
                }],
            ))
        })
        .collect()
}
