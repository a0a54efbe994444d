//! `rm_teams` and `rm_team_members`: the tenant's teams and who is in each.

use domain::{DomainEvent, TeamEvent};

use super::statements::Param;
use super::{Applied, Applying, ReadModel};

pub struct Teams;

impl ReadModel for Teams {
    fn statements(Applying(writer, event, domain): Applying<'_, '_>) -> Applied {
        let DomainEvent::Team {
            team_id,
            event: team_event,
        } = domain
        else {
            return Ok(());
        };
        let (tenant_id, at, position) = (&event.tenant_id, &event.occurred_at, &event.position);
        match team_event {
            TeamEvent::Created {
                name, description, ..
            } => writer.run(
                "INSERT INTO {t} (team_id, tenant_id, name, description, created_at, updated_at, last_position)
                 VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT (team_id) DO NOTHING",
                "rm_teams",
                params![team_id, tenant_id, name, description.clone(), at, position],
            ),
            TeamEvent::Updated {
                name, description, ..
            } => writer.run(
                "UPDATE {t} SET name = coalesce($2, name),
                                description = CASE WHEN $3::text IS NULL THEN description
                                                   ELSE nullif($3, '') END,
                                updated_at = $4, last_position = $5
                  WHERE team_id = $1 AND last_position < $5",
                "rm_teams",
                params![team_id, name.clone(), description.clone(), at, position],
            ),
            TeamEvent::Deleted { .. } => {
                writer.run(
                    "DELETE FROM {t} WHERE team_id = $1",
                    "rm_teams",
                    params![team_id],
                );
                writer.run(
                    "DELETE FROM {t} WHERE team_id = $1",
                    "rm_team_members",
                    params![team_id],
                );
            }
            TeamEvent::MembersAdded { user_ids, .. } => writer.run(
                "INSERT INTO {t} (tenant_id, team_id, user_id, added_at, last_position)
                 SELECT $1, $2, user_id, $4, $5 FROM unnest($3::uuid[]) AS added(user_id)
                 ON CONFLICT (team_id, user_id) DO NOTHING",
                "rm_team_members",
                params![tenant_id, team_id, user_ids.clone(), at, position],
            ),
            TeamEvent::MembersRemoved { user_ids, .. } => writer.run(
                "DELETE FROM {t} WHERE team_id = $1 AND user_id = ANY($2)",
                "rm_team_members",
                params![team_id, user_ids.clone()],
            ),
        }
        Ok(())
    }
}
