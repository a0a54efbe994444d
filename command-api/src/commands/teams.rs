//! The team commands: create, rename or describe, delete, add members, remove a member. Each
//! is decided against the tenant's membership view under its lock, so that no one joins a
//! team while they are being removed from the tenant.

use api_common::error::ApiError;
use domain::team::{CreateTeam as NewTeam, TeamChanges};
use domain::{Context, Team, TenantMembers};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pipeline::{Answer, Command, Decision, last_position};

/// What a team command does.
pub enum TeamChange {
    Create(NewTeam),
    Update(TeamChanges),
    Delete,
    AddMembers(Vec<Uuid>),
    RemoveMember(Uuid),
}

pub struct TeamCommand {
    pub tenant_id: Uuid,
    pub team_id: Uuid,
    pub caller_id: Uuid,
    pub change: TeamChange,
}

/// `{team_id, version, position}` after a team command.
#[derive(Serialize, ToSchema)]
pub struct TeamVersion {
    pub team_id: Uuid,
    /// The version of the team's stream after the command.
    pub version: i64,
    pub position: i64,
}

impl Command for TeamCommand {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<Team>);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        transaction.lock_tenant_membership(self.tenant_id).await?;
        let reader = transaction.reader();
        let members = reader.members(self.tenant_id).await?;
        let team = reader.load::<Team>(self.team_id).await?;
        // Another tenant's team is not there at all.
        if team.state.team_id.is_some() && team.state.tenant_id != Some(self.tenant_id) {
            return Err(ApiError::NotFound("no such team in this tenant".into()));
        }
        Ok((members, team))
    }

    fn decide(
        &self,
        (members, team): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let state = &team.state;
        let events = match &self.change {
            TeamChange::Create(command) => {
                domain::team::create(members, state, command.clone(), context)?
            }
            TeamChange::Update(changes) => {
                domain::team::update(members, state, changes.clone(), context)?
            }
            TeamChange::Delete => domain::team::delete(members, state, context)?,
            TeamChange::AddMembers(user_ids) => {
                domain::team::add_members(members, state, user_ids, context)?
            }
            TeamChange::RemoveMember(user_id) => {
                domain::team::remove_member(members, state, *user_id, context)?
            }
        };
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(self.caller_id)
                .appending(team, events),
        ))
    }

    fn answer(
        &self,
        (_, team): &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let body = TeamVersion {
            team_id: self.team_id,
            version: team.version + appended.len() as i64,
            position: last_position(appended, team.last_position),
        };
        tracing::info!(tenant_id = %self.tenant_id, team_id = %self.team_id, events = appended.len(), "team changed");
        if matches!(self.change, TeamChange::Create(_)) {
            Answer::created(body)
        } else {
            Answer::ok(body)
        }
    }
}
