//! The membership view of a tenant: who belongs to it, with which role and status.
//!
//! This is the state behind the rules that span users (only administrators manage members;
//! the last active administrator stays). It is folded from the membership events of every
//! user stream of the tenant; the store serialises the commands that decide against it per
//! tenant, so two concurrent decisions can never both remove "the other" last admin.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::event::{TeamEvent, UserEvent};
use crate::{Actor, DomainError, Role, UserStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub role: Role,
    pub status: UserStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantMembers {
    pub tenant_id: Option<Uuid>,
    pub members: BTreeMap<Uuid, Member>,
    /// The tenant's teams that exist, with their members.
    pub teams: BTreeMap<Uuid, BTreeSet<Uuid>>,
}

impl TenantMembers {
    /// The event types this view is folded from; the store loads only these.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "tenant.member_joined",
        "tenant.member_role_changed",
        "user.deactivated",
        "user.reactivated",
        "tenant.member_removed",
        "user.deletion_scheduled",
        "user.deletion_cancelled",
    ];

    /// The team event types this view is folded from.
    pub const TEAM_EVENT_TYPES: &'static [&'static str] = &[
        "team.created",
        "team.deleted",
        "team.members_added",
        "team.members_removed",
    ];

    pub fn new(tenant_id: Uuid) -> Self {
        TenantMembers {
            tenant_id: Some(tenant_id),
            ..TenantMembers::default()
        }
    }

    /// Applies one event of the stream of team `team_id`.
    pub fn apply_team(&mut self, team_id: Uuid, event: &TeamEvent) {
        match event {
            TeamEvent::Created { .. } => {
                self.teams.entry(team_id).or_default();
            }
            TeamEvent::Deleted { .. } => {
                self.teams.remove(&team_id);
            }
            TeamEvent::MembersAdded { user_ids, .. } => {
                if let Some(team) = self.teams.get_mut(&team_id) {
                    team.extend(user_ids);
                }
            }
            TeamEvent::MembersRemoved { user_ids, .. } => {
                if let Some(team) = self.teams.get_mut(&team_id) {
                    for user_id in user_ids {
                        team.remove(user_id);
                    }
                }
            }
            TeamEvent::Updated { .. } => {}
        }
    }

    /// The teams `user_id` is in.
    pub fn teams_of(&self, user_id: Uuid) -> Vec<Uuid> {
        self.teams
            .iter()
            .filter(|(_, members)| members.contains(&user_id))
            .map(|(team_id, _)| *team_id)
            .collect()
    }

    /// Whether the team exists in this tenant.
    pub fn has_team(&self, team_id: Uuid) -> bool {
        self.teams.contains_key(&team_id)
    }

    /// Applies one event of the stream of `user_id`; events outside the view are ignored.
    pub fn apply(&mut self, user_id: Uuid, event: &UserEvent) {
        match event {
            UserEvent::MemberJoined { role, .. } => {
                self.members.insert(
                    user_id,
                    Member {
                        role: *role,
                        status: UserStatus::Active,
                    },
                );
            }
            UserEvent::MemberRoleChanged { new_role, .. } => {
                if let Some(member) = self.members.get_mut(&user_id) {
                    member.role = *new_role;
                }
            }
            UserEvent::Deactivated { .. } => {
                if let Some(member) = self.members.get_mut(&user_id) {
                    member.status = UserStatus::Deactivated;
                }
            }
            UserEvent::Reactivated { .. } => {
                if let Some(member) = self.members.get_mut(&user_id) {
                    member.status = UserStatus::Active;
                }
            }
            UserEvent::MemberRemoved { .. } => {
                self.members.remove(&user_id);
            }
            // Locked out until restored: not one of the tenant's active members meanwhile.
            UserEvent::DeletionScheduled { .. } => {
                if let Some(member) = self.members.get_mut(&user_id) {
                    member.status = UserStatus::Deactivated;
                }
            }
            UserEvent::DeletionCancelled { status, .. } => {
                if let Some(member) = self.members.get_mut(&user_id) {
                    member.status = *status;
                }
            }
            UserEvent::Created { .. }
            | UserEvent::LoginFailed { .. }
            | UserEvent::ProfileUpdated { .. }
            | UserEvent::PlatformAdminGranted { .. }
            | UserEvent::PasswordChanged { .. }
            | UserEvent::PasswordResetRequested { .. }
            | UserEvent::PasswordReset { .. }
            | UserEvent::EmailChangeRequested { .. }
            | UserEvent::EmailVerified { .. }
            | UserEvent::EmailChanged { .. }
            | UserEvent::Locked { .. }
            | UserEvent::Unlocked { .. }
            | UserEvent::Deleted { .. } => {}
        }
    }

    /// The admins whose accounts are active, in id order.
    pub fn active_admin_ids(&self) -> Vec<Uuid> {
        self.members
            .iter()
            .filter(|(_, m)| m.role == Role::Admin && m.status == UserStatus::Active)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn active_admins(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Admin && m.status == UserStatus::Active)
            .count()
    }

    pub fn is_active_admin(&self, user_id: Uuid) -> bool {
        self.members
            .get(&user_id)
            .is_some_and(|m| m.role == Role::Admin && m.status == UserStatus::Active)
    }

    /// Refuses unless the actor administers this tenant (or is a platform admin).
    pub fn require_admin(&self, actor: &Actor) -> Result<Uuid, DomainError> {
        match actor {
            Actor::PlatformAdmin { user_id } => Ok(*user_id),
            Actor::User {
                user_id, tenant_id, ..
            } if Some(*tenant_id) == self.tenant_id && self.is_active_admin(*user_id) => {
                Ok(*user_id)
            }
            _ => Err(DomainError::NotAllowed),
        }
    }

    /// True when removing `user_id` from the active administrators would leave none.
    pub fn is_last_active_admin(&self, user_id: Uuid) -> bool {
        self.is_active_admin(user_id) && self.active_admins() == 1
    }
}
