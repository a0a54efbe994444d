//! The invitation commands of an admin: invite an address, send an invitation again with a
//! new token, revoke it. Decided against the membership view under the tenant's lock (only
//! admins invite; an active member cannot be invited); one open invitation per address is
//! held by a reservation of the address's blind index, owned by the latest invitation.

use api_common::error::ApiError;
use chrono::{DateTime, Utc};
use domain::invitation::Invite;
use domain::{Context, Invitation, TenantMembers, User};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use infra::email_jobs::{EmailSecret, LinkPurpose};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::EMAIL;
use crate::pipeline::{Answer, Command, Decision, last_position};

pub use eventstore::INVITATION;

/// A one-time invitation token (see [`infra::crypto::LinkToken`]).
pub struct InvitationToken {
    pub token: String,
    pub hash: String,
}

impl InvitationToken {
    pub fn new(invitation_id: Uuid) -> Result<Self, ApiError> {
        let infra::crypto::LinkToken { token, hash } = super::link_token(invitation_id)?;
        Ok(InvitationToken { token, hash })
    }

    /// The invitation a presented token names, if it has the form of one.
    pub fn invitation_of(token: &str) -> Option<Uuid> {
        infra::crypto::LinkToken::aggregate_of(token)
    }
}

pub struct CreateInvitation {
    pub invite: Invite,
    pub caller_id: Uuid,
    /// The token whose hash `invite` carries: kept sealed for the email only.
    pub token: String,
}

pub struct InvitationState {
    members: TenantMembers,
    account: User,
    previous: Invitation,
    invitation: Loaded<Invitation>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationCreated {
    pub invitation_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub position: i64,
}

impl Command for CreateInvitation {
    type Unit = Transaction;
    type State = InvitationState;
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<InvitationState, ApiError> {
        let tenant_id = self.invite.tenant_id;
        transaction.lock_tenant_membership(tenant_id).await?;
        let reader = transaction.reader();
        let members = reader.members(tenant_id).await?;
        let normalised = self.invite.email.normalised();
        let keys = transaction.keys();
        let account = match reader
            .reservation_owner(tenant_id, EMAIL, &keys.blind_index(EMAIL, &normalised))
            .await?
        {
            Some(user_id) => reader.load::<User>(user_id).await?.state,
            None => User::default(),
        };
        let previous = match reader
            .reservation_owner(
                tenant_id,
                INVITATION,
                &keys.blind_index(INVITATION, &normalised),
            )
            .await?
        {
            Some(invitation_id) => reader.load::<Invitation>(invitation_id).await?.state,
            None => Invitation::default(),
        };
        let invitation = reader.load::<Invitation>(self.invite.invitation_id).await?;
        Ok(InvitationState {
            members,
            account,
            previous,
            invitation,
        })
    }

    fn decide(&self, state: &InvitationState, context: &Context) -> Result<Decision, ApiError> {
        if state.invitation.state.exists() {
            return Err(ApiError::Conflict("the invitation already exists".into()));
        }
        let events = domain::invitation::invite(
            &state.members,
            &state.account,
            &state.previous,
            self.invite.clone(),
            context,
        )?;
        Ok(Decision::to_append(
            Changes::new(self.invite.tenant_id, context.now)
                .by(self.caller_id)
                .appending(&state.invitation, events),
        ))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _: &InvitationState,
        _: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        let invite = &self.invite;
        let hash = transaction
            .keys()
            .blind_index(INVITATION, &invite.email.normalised());
        transaction
            .take_over(invite.tenant_id, INVITATION, &hash, invite.invitation_id)
            .await?;
        keep_token(
            transaction,
            invite.tenant_id,
            invite.invitation_id,
            &self.token,
            invite.expires_at,
            appended,
        )
        .await
    }

    fn answer(
        &self,
        _: &InvitationState,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = %self.invite.tenant_id, invitation_id = %self.invite.invitation_id, "invitation created");
        Answer::created(InvitationCreated {
            invitation_id: self.invite.invitation_id,
            expires_at: self.invite.expires_at,
            position: last_position(appended, 0),
        })
    }
}

/// Keeps the token sealed for the email of the event that carries its hash.
async fn keep_token(
    transaction: &Transaction,
    tenant_id: Uuid,
    invitation_id: Uuid,
    token: &str,
    expires_at: DateTime<Utc>,
    appended: &[AppendedEvent],
) -> Result<(), ApiError> {
    let Some(event) = appended.first() else {
        return Ok(());
    };
    transaction
        .forget_email_secrets(invitation_id, LinkPurpose::Invitation)
        .await?;
    transaction
        .keep_email_secret(&EmailSecret {
            event_id: event.event_id,
            tenant_id,
            aggregate_id: invitation_id,
            purpose: LinkPurpose::Invitation,
            token,
            expires_at,
        })
        .await?;
    Ok(())
}

/// Resend (a new token and expiry) or revoke.
pub enum InvitationChange {
    Resend {
        token: InvitationToken,
        expires_at: DateTime<Utc>,
    },
    Revoke,
}

pub struct ChangeInvitation {
    pub tenant_id: Uuid,
    pub invitation_id: Uuid,
    pub caller_id: Uuid,
    pub change: InvitationChange,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationChanged {
    pub invitation_id: Uuid,
    /// The invitation's expiry after the command (a resend sets a new one).
    pub expires_at: Option<DateTime<Utc>>,
    /// `pending` after a resend, `revoked` after a revocation.
    pub status: String,
    pub position: i64,
}

impl Command for ChangeInvitation {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<Invitation>);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        transaction.lock_tenant_membership(self.tenant_id).await?;
        let reader = transaction.reader();
        let members = reader.members(self.tenant_id).await?;
        let invitation = reader.load::<Invitation>(self.invitation_id).await?;
        Ok((members, invitation))
    }

    fn decide(
        &self,
        (members, invitation): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let events = match &self.change {
            InvitationChange::Resend { token, expires_at } => domain::invitation::resend(
                members,
                &invitation.state,
                token.hash.clone(),
                *expires_at,
                context,
            )?,
            InvitationChange::Revoke => {
                domain::invitation::revoke(members, &invitation.state, context)?
            }
        };
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(self.caller_id)
                .appending(invitation, events),
        ))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _: &Self::State,
        _: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        match &self.change {
            InvitationChange::Resend { token, expires_at } => {
                keep_token(
                    transaction,
                    self.tenant_id,
                    self.invitation_id,
                    &token.token,
                    *expires_at,
                    appended,
                )
                .await
            }
            InvitationChange::Revoke => Ok(transaction
                .forget_email_secrets(self.invitation_id, LinkPurpose::Invitation)
                .await?),
        }
    }

    fn answer(
        &self,
        (_, invitation): &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        let (expires_at, status) = match &self.change {
            InvitationChange::Resend { expires_at, .. } => (Some(*expires_at), "pending"),
            InvitationChange::Revoke => (invitation.state.expires_at, "revoked"),
        };
        tracing::info!(tenant_id = %self.tenant_id, invitation_id = %self.invitation_id, status, "invitation changed");
        Answer::ok(InvitationChanged {
            invitation_id: self.invitation_id,
            expires_at,
            status: status.to_owned(),
            position: last_position(appended, invitation.last_position),
        })
    }
}
