//! `POST /v1/invitations/accept`: the holder of an invitation's token joins its tenant with
//! the invited role and teams — as a new account (password and display name required, the
//! address reserved as at signup) or, for a removed member invited back, their account —
//! all in one transaction with `invitation.accepted`.

use api_common::error::ApiError;
use domain::invitation::NewAccount;
use domain::{Context, DomainError, Invitation, Team, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::invitations::InvitationToken;
use super::links::{NewLink, keep_link};
use super::{EMAIL, reserve_email};
use crate::pipeline::{Answer, Command, Decision, last_position};

pub struct AcceptInvitation {
    pub token: String,
    /// For a new account: the name and the password's hash (hashed before deciding).
    pub new_account: Option<NewAccount>,
    /// For a new account: the link that will confirm its address.
    pub verification: Option<NewLink>,
}

pub struct AcceptState {
    invitation: Loaded<Invitation>,
    account: Loaded<User>,
    teams: Vec<Loaded<Team>>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationAccepted {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub position: i64,
}

/// What the decision tells the answer and the writes beside the events.
pub struct Joined {
    user_id: Uuid,
    new_account: bool,
}

impl Command for AcceptInvitation {
    type Unit = Transaction;
    type State = AcceptState;
    type Outcome = Joined;

    async fn load(&self, transaction: &Transaction) -> Result<AcceptState, ApiError> {
        let invitation_id = InvitationToken::invitation_of(&self.token)
            .ok_or(DomainError::InvitationTokenInvalid)?;
        let reader = transaction.reader();
        let invitation = reader.load::<Invitation>(invitation_id).await?;
        let tenant_id = invitation
            .state
            .tenant_id
            .ok_or(DomainError::InvitationTokenInvalid)?;
        transaction.lock_tenant_membership(tenant_id).await?;
        // Loaded again under the lock: a concurrent acceptance is seen, not overwritten.
        let invitation = reader.load::<Invitation>(invitation_id).await?;
        let email_hash = transaction.keys().blind_index(
            EMAIL,
            &domain::values::normalise_email(&invitation.state.email),
        );
        let account = match reader
            .reservation_owner(tenant_id, EMAIL, &email_hash)
            .await?
        {
            Some(user_id) => reader.load::<User>(user_id).await?,
            None => Loaded::new(invitation.state.user_id.unwrap_or_else(Uuid::nil)),
        };
        let mut teams = Vec::new();
        for team_id in &invitation.state.team_ids {
            teams.push(reader.load::<Team>(*team_id).await?);
        }
        Ok(AcceptState {
            invitation,
            account,
            teams,
        })
    }

    fn decide(&self, state: &AcceptState, context: &Context) -> Result<Decision<Joined>, ApiError> {
        let token_hash = infra::crypto::token_hash(&self.token);
        let teams: Vec<Team> = state.teams.iter().map(|team| team.state.clone()).collect();
        let acceptance = domain::invitation::accept(
            &state.invitation.state,
            &token_hash,
            &state.account.state,
            self.new_account.clone(),
            &teams,
            context,
        )?;
        let tenant_id = state
            .invitation
            .state
            .tenant_id
            .ok_or(DomainError::InvitationTokenInvalid)?;
        let mut changes = Changes::new(tenant_id, context.now)
            .by(acceptance.user_id)
            .appending(&state.invitation, acceptance.invitation);
        if acceptance.new_account {
            let mut events = acceptance.user;
            if let Some(link) = &self.verification {
                domain::links::with_verification(
                    &mut events,
                    link.token.hash.clone(),
                    link.expires_at,
                );
            }
            changes = changes.creating::<User>(acceptance.user_id, events);
        } else {
            changes.append(&state.account, acceptance.user);
        }
        for (team_id, events) in acceptance.teams {
            if let Some(team) = state.teams.iter().find(|team| team.id == team_id) {
                changes.append(team, events);
            }
        }
        Ok(Decision {
            changes,
            outcome: Joined {
                user_id: acceptance.user_id,
                new_account: acceptance.new_account,
            },
        })
    }

    async fn within(
        &self,
        transaction: &Transaction,
        state: &AcceptState,
        _: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        let invitation = &state.invitation.state;
        if let (Some(tenant_id), Some(user_id)) = (invitation.tenant_id, invitation.user_id)
            && !state.account.state.is_present()
        {
            let email = domain::values::Email::parse(&invitation.email)?;
            reserve_email(transaction, tenant_id, &email, user_id).await?;
            if let Some(link) = &self.verification {
                let purpose = infra::email_jobs::LinkPurpose::EmailVerification;
                keep_link(transaction, tenant_id, user_id, purpose, link, appended).await?;
            }
        }
        if let Some(invitation_id) = invitation.invitation_id {
            transaction
                .forget_email_secrets(invitation_id, infra::email_jobs::LinkPurpose::Invitation)
                .await?;
        }
        Ok(())
    }

    fn answer(
        &self,
        state: &AcceptState,
        joined: Joined,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let tenant_id = state.invitation.state.tenant_id.unwrap_or_default();
        tracing::info!(%tenant_id, user_id = %joined.user_id, invitation_id = %state.invitation.id, new_account = joined.new_account, "invitation accepted");
        Answer::created(InvitationAccepted {
            tenant_id,
            user_id: joined.user_id,
            position: last_position(appended, 0),
        })
    }
}
