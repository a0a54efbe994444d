//! The authentication state: who may act (principals) and which sessions are open.
//!
//! An inline projection: written by the event store in the same transaction as the events
//! that change it, so a deactivation, a role change or a revocation holds for every API
//! instance the moment its command commits. Each row remembers the position of the last
//! event applied to it, so applying an event twice (a rebuild over live data) changes
//! nothing. See docs/adr/0004-authentication-state.md.

use chrono::{DateTime, Utc};
use domain::{DomainEvent, SessionEvent, UserEvent};
use tokio_postgres::Client;
use uuid::Uuid;

/// Applies one appended event to the authentication tables.
pub async fn apply(
    client: &Client,
    tenant_id: Uuid,
    position: i64,
    event: &DomainEvent,
    occurred_at: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    match event {
        DomainEvent::Tenant { .. }
        | DomainEvent::Team { .. }
        | DomainEvent::Invitation { .. }
        | DomainEvent::Import { .. } => {}
        DomainEvent::User { user_id, event } => match event {
            UserEvent::MemberJoined { role, .. } => {
                client
                    .execute(
                        "INSERT INTO auth_principals (user_id, tenant_id, role, status, last_position)
                         VALUES ($1, $2, $3, 'active', $4)
                         ON CONFLICT (user_id) DO UPDATE SET role = EXCLUDED.role, status = 'active',
                             last_position = EXCLUDED.last_position
                         WHERE auth_principals.last_position < EXCLUDED.last_position",
                        &[user_id, &tenant_id, &role.as_str(), &position],
                    )
                    .await?;
            }
            UserEvent::MemberRoleChanged { new_role, .. } => {
                update_principal(client, *user_id, position, "role", new_role.as_str()).await?;
            }
            UserEvent::Deactivated { .. } => {
                update_principal(client, *user_id, position, "status", "deactivated").await?;
                end_sessions_of(client, *user_id, position, occurred_at).await?;
            }
            UserEvent::Reactivated { .. } => {
                update_principal(client, *user_id, position, "status", "active").await?;
            }
            // Locked out at once, until restored or purged.
            UserEvent::DeletionScheduled { .. } => {
                update_principal(client, *user_id, position, "status", "deletion_scheduled")
                    .await?;
                end_sessions_of(client, *user_id, position, occurred_at).await?;
            }
            UserEvent::DeletionCancelled { status, .. } => {
                update_principal(client, *user_id, position, "status", status.as_str()).await?;
            }
            UserEvent::MemberRemoved { .. } | UserEvent::Deleted { .. } => {
                client
                    .execute("DELETE FROM auth_principals WHERE user_id = $1", &[user_id])
                    .await?;
                end_sessions_of(client, *user_id, position, occurred_at).await?;
            }
            UserEvent::PlatformAdminGranted { .. } => {
                client
                    .execute(
                        "UPDATE auth_principals SET platform_admin = true, last_position = $2
                          WHERE user_id = $1 AND last_position < $2",
                        &[user_id, &position],
                    )
                    .await?;
            }
            UserEvent::Created { .. }
            | UserEvent::LoginFailed { .. }
            | UserEvent::ProfileUpdated { .. }
            | UserEvent::PasswordChanged { .. }
            | UserEvent::PasswordResetRequested { .. }
            | UserEvent::PasswordReset { .. }
            | UserEvent::EmailChangeRequested { .. }
            | UserEvent::EmailVerified { .. }
            | UserEvent::EmailChanged { .. }
            | UserEvent::Locked { .. }
            | UserEvent::Unlocked { .. } => {}
        },
        DomainEvent::Session { session_id, event } => match event {
            SessionEvent::LoggedIn {
                user_id,
                refresh_token_hash,
                expires_at,
                ..
            } => {
                client
                    .execute(
                        "INSERT INTO auth_sessions (session_id, tenant_id, user_id, refresh_token_hash,
                                                    created_at, expires_at, last_position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id) DO NOTHING",
                        &[
                            session_id,
                            &tenant_id,
                            user_id,
                            &refresh_token_hash.as_bytes(),
                            &occurred_at,
                            expires_at,
                            &position,
                        ],
                    )
                    .await?;
            }
            SessionEvent::Refreshed {
                refresh_token_hash,
                expires_at,
                ..
            } => {
                client
                    .execute(
                        "UPDATE auth_sessions SET refresh_token_hash = $2, expires_at = $3, last_position = $4
                         WHERE session_id = $1 AND last_position < $4",
                        &[session_id, &refresh_token_hash.as_bytes(), expires_at, &position],
                    )
                    .await?;
            }
            SessionEvent::Revoked { .. } => {
                client
                    .execute(
                        "UPDATE auth_sessions SET revoked_at = coalesce(revoked_at, $2), last_position = $3
                         WHERE session_id = $1 AND last_position < $3",
                        &[session_id, &occurred_at, &position],
                    )
                    .await?;
            }
        },
    }
    Ok(())
}

async fn update_principal(
    client: &Client,
    user_id: Uuid,
    position: i64,
    column: &'static str,
    value: &str,
) -> Result<(), tokio_postgres::Error> {
    // `column` is one of two literals chosen above, never input.
    let statement = format!(
        "UPDATE auth_principals SET {column} = $2, last_position = $3 WHERE user_id = $1 AND last_position < $3"
    );
    client
        .execute(&statement, &[&user_id, &value, &position])
        .await?;
    Ok(())
}

async fn end_sessions_of(
    client: &Client,
    user_id: Uuid,
    position: i64,
    occurred_at: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE auth_sessions SET revoked_at = $2, last_position = $3
             WHERE user_id = $1 AND revoked_at IS NULL AND last_position < $3",
            &[&user_id, &occurred_at, &position],
        )
        .await?;
    Ok(())
}
