//! The invitation aggregate: an admin invites an address to the tenant with a role and
//! teams; the holder of the emailed token accepts it once, before it expires, unless it was
//! revoked. Invitations are admitted whatever the tenant's signup policy is.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{InvitationEvent, TeamEvent, UserEvent};
use crate::members::TenantMembers;
use crate::team::{self, Team};
use crate::user::User;
use crate::values::{DisplayName, Email};
use crate::{Context, DomainError, Role};

/// The shortest and longest lifetimes of an invitation, in minutes, and the default (7 days).
pub const MIN_EXPIRES_IN_MINUTES: u32 = 1;
pub const MAX_EXPIRES_IN_MINUTES: u32 = 43_200;
pub const DEFAULT_EXPIRES_IN_MINUTES: u32 = 10_080;
/// The most teams one invitation may name.
pub const MAX_TEAMS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invitation {
    pub invitation_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    /// The account the invitation is for (see `invitation.created`).
    pub user_id: Option<Uuid>,
    pub email: String,
    pub role: Option<Role>,
    pub team_ids: Vec<Uuid>,
    pub token_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: Option<InvitationStatus>,
    pub invited_by: Option<Uuid>,
    /// The account that joined by it, once accepted.
    pub accepted_by: Option<Uuid>,
    /// The bulk import that created the account it is for.
    pub import_id: Option<Uuid>,
    /// The number of events applied: the stream's version.
    pub version: i64,
}

/// A new invitation; the token is made (and only its hash kept) before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub invitation_id: Uuid,
    pub tenant_id: Uuid,
    /// The id a new account takes, should the address have none in the tenant.
    pub new_user_id: Uuid,
    pub email: Email,
    pub role: Role,
    pub team_ids: Vec<Uuid>,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What a new account needs when an invitation creates one (both), or an imported account
/// when it sets its first password (the password; a name is kept as imported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub display_name: Option<DisplayName>,
    pub password_hash: String,
}

/// What accepting appends: to the invitation, to the account joining, to its teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    pub user_id: Uuid,
    pub new_account: bool,
    pub invitation: Vec<InvitationEvent>,
    pub user: Vec<UserEvent>,
    pub teams: Vec<(Uuid, Vec<TeamEvent>)>,
}

impl Invitation {
    pub fn exists(&self) -> bool {
        self.invitation_id.is_some()
    }

    /// The status as of `now`: a pending invitation past its expiry is expired even before
    /// the system records it.
    pub fn status_at(&self, now: DateTime<Utc>) -> Option<InvitationStatus> {
        match (self.status, self.expires_at) {
            (Some(InvitationStatus::Pending), Some(expires_at)) if now >= expires_at => {
                Some(InvitationStatus::Expired)
            }
            (status, _) => status,
        }
    }

    /// Pending and not past its expiry.
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        self.status_at(now) == Some(InvitationStatus::Pending)
    }

    pub fn apply(&mut self, event: &InvitationEvent) {
        match event {
            InvitationEvent::Created {
                invitation_id,
                tenant_id,
                user_id,
                email,
                role,
                team_ids,
                token_hash,
                expires_at,
                invited_by,
                import_id,
            } => {
                self.import_id = *import_id;
                self.invitation_id = Some(*invitation_id);
                self.tenant_id = Some(*tenant_id);
                self.user_id = Some(*user_id);
                self.email.clone_from(email);
                self.role = Some(*role);
                self.team_ids.clone_from(team_ids);
                self.token_hash.clone_from(token_hash);
                self.expires_at = Some(*expires_at);
                self.status = Some(InvitationStatus::Pending);
                self.invited_by = Some(*invited_by);
            }
            InvitationEvent::Resent {
                token_hash,
                expires_at,
                ..
            } => {
                self.token_hash.clone_from(token_hash);
                self.expires_at = Some(*expires_at);
            }
            InvitationEvent::Revoked { .. } => self.status = Some(InvitationStatus::Revoked),
            InvitationEvent::Accepted { user_id, .. } => {
                self.status = Some(InvitationStatus::Accepted);
                self.accepted_by = Some(*user_id);
            }
            InvitationEvent::Expired { .. } => self.status = Some(InvitationStatus::Expired),
        }
        self.version += 1;
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a InvitationEvent>) -> Self {
        let mut invitation = Invitation::default();
        for event in events {
            invitation.apply(event);
        }
        invitation
    }

    fn require_in(&self, members: &TenantMembers) -> Result<Uuid, DomainError> {
        match self.invitation_id {
            Some(id) if self.tenant_id == members.tenant_id => Ok(id),
            _ => Err(DomainError::InvitationNotFound),
        }
    }

    fn require_pending(&self) -> Result<(), DomainError> {
        match self.status {
            Some(InvitationStatus::Pending) => Ok(()),
            Some(status) => Err(DomainError::InvitationClosed(format!(
                "the invitation is {}",
                status.as_str()
            ))),
            None => Err(DomainError::InvitationNotFound),
        }
    }
}

/// A tenant admin invites an address. `account` is the tenant's account holding the address
/// (if any): an active member cannot be invited; a removed one is invited back to the same
/// account. `previous` is the last invitation of the address: while it is open, a new one is
/// refused.
pub fn invite(
    members: &TenantMembers,
    account: &User,
    previous: &Invitation,
    command: Invite,
    context: &Context,
) -> Result<Vec<InvitationEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    if members.tenant_id != Some(command.tenant_id) {
        return Err(DomainError::TenantNotFound);
    }
    if account.is_member() {
        return Err(DomainError::AlreadyMember);
    }
    if previous.is_open_at(context.now) {
        return Err(DomainError::InvitationPending);
    }
    if command.expires_at <= context.now {
        return Err(DomainError::Invalid(
            "the expiry must be in the future".into(),
        ));
    }
    let team_ids = known_teams(members, &command.team_ids)?;
    let user_id = if account.is_present() {
        account.user_id.unwrap_or(command.new_user_id)
    } else {
        command.new_user_id
    };
    Ok(vec![InvitationEvent::Created {
        invitation_id: command.invitation_id,
        tenant_id: command.tenant_id,
        user_id,
        email: command.email.into_inner(),
        role: command.role,
        team_ids,
        token_hash: command.token_hash,
        expires_at: command.expires_at,
        invited_by: actor,
        import_id: None,
    }])
}

/// The team ids without repeats, in the order given, each an existing team of the tenant.
fn known_teams(members: &TenantMembers, team_ids: &[Uuid]) -> Result<Vec<Uuid>, DomainError> {
    if team_ids.len() > MAX_TEAMS {
        return Err(DomainError::Invalid(format!(
            "team_ids may name at most {MAX_TEAMS} teams"
        )));
    }
    let unknown: Vec<String> = team_ids
        .iter()
        .filter(|id| !members.has_team(**id))
        .map(Uuid::to_string)
        .collect();
    if !unknown.is_empty() {
        return Err(DomainError::Invalid(format!(
            "no such teams in this tenant: {}",
            unknown.join(", ")
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    Ok(team_ids
        .iter()
        .filter(|id| seen.insert(**id))
        .copied()
        .collect())
}

/// A tenant admin sends a pending invitation again, with a new token and expiry.
pub fn resend(
    members: &TenantMembers,
    invitation: &Invitation,
    token_hash: String,
    expires_at: DateTime<Utc>,
    context: &Context,
) -> Result<Vec<InvitationEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    let invitation_id = invitation.require_in(members)?;
    invitation.require_pending()?;
    Ok(vec![InvitationEvent::Resent {
        invitation_id,
        token_hash,
        expires_at,
        resent_by: actor,
    }])
}

/// A tenant admin revokes a pending invitation: its token stops working.
pub fn revoke(
    members: &TenantMembers,
    invitation: &Invitation,
    context: &Context,
) -> Result<Vec<InvitationEvent>, DomainError> {
    let actor = members.require_admin(&context.actor)?;
    let invitation_id = invitation.require_in(members)?;
    invitation.require_pending()?;
    Ok(vec![InvitationEvent::Revoked {
        invitation_id,
        revoked_by: actor,
    }])
}

/// Whether `token_hash` opens the invitation now: the right token of a pending invitation
/// before its expiry.
pub fn check_token(
    invitation: &Invitation,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Uuid, DomainError> {
    let Some(invitation_id) = invitation.invitation_id else {
        return Err(DomainError::InvitationTokenInvalid);
    };
    if invitation.token_hash.is_empty() || !constant_time_eq(&invitation.token_hash, token_hash) {
        return Err(DomainError::InvitationTokenInvalid);
    }
    match invitation.status_at(now) {
        Some(InvitationStatus::Pending) => Ok(invitation_id),
        Some(InvitationStatus::Accepted) => Err(DomainError::InvitationClosed(
            "the invitation was already accepted".into(),
        )),
        Some(InvitationStatus::Revoked) => Err(DomainError::InvitationGone(
            "the invitation was revoked".into(),
        )),
        Some(InvitationStatus::Expired) => Err(DomainError::InvitationGone(
            "the invitation has expired".into(),
        )),
        None => Err(DomainError::InvitationTokenInvalid),
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The holder of the token accepts. `account` is the tenant's account holding the invited
/// address now (if any): a removed member rejoins it, an active member cannot join twice;
/// otherwise a new account is created, for which `new_account` must be given. The member
/// joins with the invited role and the invited teams that still exist (`teams`).
pub fn accept(
    invitation: &Invitation,
    token_hash: &str,
    account: &User,
    new_account: Option<NewAccount>,
    teams: &[Team],
    context: &Context,
) -> Result<Acceptance, DomainError> {
    let invitation_id = check_token(invitation, token_hash, context.now)?;
    let tenant_id = invitation
        .tenant_id
        .ok_or(DomainError::InvitationNotFound)?;
    let role = invitation.role.unwrap_or(Role::Member);
    if account.is_member()
        && invitation.import_id.is_some()
        && invitation.user_id == account.user_id
    {
        return first_password(invitation_id, account, new_account);
    }
    if account.is_member() {
        return Err(DomainError::AlreadyMember);
    }
    let actor = invitation.invited_by;
    let (user_id, mut user, created) = if account.is_present() {
        let user_id = account.user_id.ok_or(DomainError::UserNotFound)?;
        // Invited back: a deactivated account comes back active, as the admin asked.
        let mut events =
            crate::lifecycle::cancelled_by_invitation(account, actor.unwrap_or(user_id));
        if account.status == Some(crate::UserStatus::Deactivated) {
            events.push(UserEvent::Reactivated {
                user_id,
                reactivated_by: actor.unwrap_or(user_id),
            });
        }
        (user_id, events, false)
    } else {
        let user_id = invitation.user_id.ok_or(DomainError::InvitationNotFound)?;
        let required = || {
            DomainError::Invalid(
                "password and display_name are required: the invitation creates an account".into(),
            )
        };
        let NewAccount {
            display_name,
            password_hash,
        } = new_account.ok_or_else(required)?;
        let display_name = display_name.ok_or_else(required)?;
        let created = UserEvent::Created {
            user_id,
            tenant_id,
            email: invitation.email.clone(),
            display_name: display_name.into_inner(),
            password_hash,
            email_verification: None,
            source: None,
        };
        (user_id, vec![created], true)
    };
    user.push(UserEvent::MemberJoined {
        tenant_id,
        user_id,
        role,
    });
    let invited: Vec<Team> = teams
        .iter()
        .filter(|team| {
            team.team_id
                .is_some_and(|id| invitation.team_ids.contains(&id))
                && team.tenant_id == Some(tenant_id)
        })
        .cloned()
        .collect();
    let actor = actor.unwrap_or(user_id);
    Ok(Acceptance {
        user_id,
        new_account: created,
        invitation: vec![InvitationEvent::Accepted {
            invitation_id,
            user_id,
            new_account: created,
        }],
        user,
        teams: team::joined_by_invitation(&invited, user_id, actor),
    })
}

/// The holder of an imported account's link sets its first password; the link reached the
/// address, so it counts as verified.
fn first_password(
    invitation_id: Uuid,
    account: &User,
    new_account: Option<NewAccount>,
) -> Result<Acceptance, DomainError> {
    let user_id = account.user_id.ok_or(DomainError::UserNotFound)?;
    if !account.password_hash.is_empty() {
        return Err(DomainError::AlreadyMember);
    }
    let password_hash = new_account
        .map(|account| account.password_hash)
        .ok_or_else(|| {
            DomainError::Invalid("password is required: set the account's first password".into())
        })?;
    let mut user = vec![UserEvent::PasswordChanged {
        user_id,
        password_hash,
        changed_by: user_id,
    }];
    if !account.email_verified {
        user.push(UserEvent::EmailVerified { user_id });
    }
    Ok(Acceptance {
        user_id,
        new_account: false,
        invitation: vec![InvitationEvent::Accepted {
            invitation_id,
            user_id,
            new_account: false,
        }],
        user,
        teams: Vec::new(),
    })
}

/// The system expires a pending invitation once its expiry has passed; anything else is
/// left as it is (the timer may fire late, twice, or after a resend).
pub fn expire(invitation: &Invitation, now: DateTime<Utc>) -> Vec<InvitationEvent> {
    match (
        invitation.invitation_id,
        invitation.status,
        invitation.expires_at,
    ) {
        (Some(invitation_id), Some(InvitationStatus::Pending), Some(expires_at))
            if now >= expires_at =>
        {
            vec![InvitationEvent::Expired {
                invitation_id,
                expires_at,
            }]
        }
        _ => Vec::new(),
    }
}
