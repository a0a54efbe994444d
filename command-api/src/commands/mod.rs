//! One file per command. Each says what it loads, how it decides (through `domain`), what it
//! writes beside its events, and what it answers; [`crate::pipeline::execute`] runs them.

pub mod accept_invitation;
pub mod account;
pub mod change_tenant_settings;
pub mod credentials;
pub mod erase_user;
pub mod grant_platform_admin;
pub mod imports;
pub mod invitations;
pub mod links;
pub mod log_in;
pub mod manage_user;
pub mod refresh_session;
pub mod remove_member;
pub mod revoke_session;
pub mod set_rate_limit;
pub mod sign_up_tenant;
pub mod sign_up_user;
pub mod teams;
pub mod update_profile;
pub mod webhooks;

use api_common::error::ApiError;
use domain::User;
use domain::values::Email;
use eventstore::{AppendedEvent, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pipeline::{Answer, last_position};

pub use eventstore::EMAIL;

/// Reserves a user's email within the tenant (normalised, as a blind index).
pub async fn reserve_email(
    transaction: &Transaction,
    tenant_id: Uuid,
    email: &Email,
    user_id: Uuid,
) -> Result<(), ApiError> {
    let email_hash = transaction.keys().blind_index(EMAIL, &email.normalised());
    Ok(transaction
        .reserve(tenant_id, EMAIL, &email_hash, user_id)
        .await?)
}

/// A new one-time link token for an aggregate.
pub fn link_token(aggregate_id: Uuid) -> Result<infra::crypto::LinkToken, ApiError> {
    infra::crypto::LinkToken::new(aggregate_id)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("no randomness: {e:?}")))
}

#[derive(Serialize, ToSchema)]
pub struct UserVersion {
    pub user_id: Uuid,
    /// The version of the user's stream after the command.
    pub version: i64,
    pub position: i64,
}

impl UserVersion {
    /// `{user_id, version, position}` after appending to a user's stream (what was
    /// appended, or where the stream stood when nothing was).
    pub fn answer(user: &Loaded<User>, appended: &[AppendedEvent]) -> Result<Answer, ApiError> {
        Answer::ok(UserVersion {
            user_id: user.id,
            version: user.version + appended.len() as i64,
            position: last_position(appended, user.last_position),
        })
    }
}

/// The member `user_id` of `tenant_id` with the tenant's membership view, locked for the
/// rest of the transaction.
pub async fn load_member(
    transaction: &Transaction,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<(domain::TenantMembers, Loaded<User>), ApiError> {
    transaction.lock_tenant_membership(tenant_id).await?;
    let reader = transaction.reader();
    let members = reader.members(tenant_id).await?;
    let user = reader.load::<User>(user_id).await?;
    if user.state.tenant_id != Some(tenant_id) || !user.state.is_present() {
        return Err(ApiError::NotFound("no such user in this tenant".into()));
    }
    Ok((members, user))
}
