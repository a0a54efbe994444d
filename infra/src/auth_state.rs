//! The authentication state: who may act (principals) and which sessions are open.
//!
//! An inline projection: written by the event store in the same transaction as the events
//! that change it, so a deactivation, a role change or a revocation holds for every API
//! instance the moment its command commits. Each row remembers the position of the last
//! event applied to it, so applying an event twice (a rebuild over live data) changes
//! nothing. See docs/adr/0004-authentication-state.md.
//!
//! The writes of a whole append go out at once on prepared statements (one round trip), in
//! the events' order, which is the order Postgres runs them in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use domain::{DomainEvent, SessionEvent, UserEvent};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// An appended event, with what its writes need.
pub struct Appended<'a> {
    pub tenant_id: Uuid,
    pub position: i64,
    pub event: &'a DomainEvent,
    pub occurred_at: DateTime<Utc>,
}

const JOIN: &str = "INSERT INTO auth_principals (user_id, tenant_id, role, status, last_position)
     VALUES ($1, $2, $3, 'active', $4)
     ON CONFLICT (user_id) DO UPDATE SET role = EXCLUDED.role, status = 'active',
         last_position = EXCLUDED.last_position
     WHERE auth_principals.last_position < EXCLUDED.last_position";
const SET_ROLE: &str = "UPDATE auth_principals SET role = $2, last_position = $3
     WHERE user_id = $1 AND last_position < $3";
const SET_STATUS: &str = "UPDATE auth_principals SET status = $2, last_position = $3
     WHERE user_id = $1 AND last_position < $3";
const REMOVE: &str = "DELETE FROM auth_principals WHERE user_id = $1";
const GRANT_PLATFORM_ADMIN: &str =
    "UPDATE auth_principals SET platform_admin = true, last_position = $2
      WHERE user_id = $1 AND last_position < $2";
const END_SESSIONS: &str = "UPDATE auth_sessions SET revoked_at = $2, last_position = $3
     WHERE user_id = $1 AND revoked_at IS NULL AND last_position < $3";
const OPEN_SESSION: &str =
    "INSERT INTO auth_sessions (session_id, tenant_id, user_id, refresh_token_hash,
                                created_at, expires_at, last_position)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id) DO NOTHING";
const REFRESH: &str = "UPDATE auth_sessions SET refresh_token_hash = $2, expires_at = $3,
         last_position = $4
     WHERE session_id = $1 AND last_position < $4";
const REVOKE: &str =
    "UPDATE auth_sessions SET revoked_at = coalesce(revoked_at, $2), last_position = $3
     WHERE session_id = $1 AND last_position < $3";

/// One write: a statement and its parameters.
struct Write {
    statement: &'static str,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

fn write(statement: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>) -> Write {
    Write { statement, params }
}

/// Applies appended events to the authentication tables, in their order.
pub async fn apply_all<'a>(
    client: &Object,
    appended: impl IntoIterator<Item = Appended<'a>>,
) -> Result<(), tokio_postgres::Error> {
    let mut writes = Vec::new();
    for event in appended {
        writes_of(&event, &mut writes);
    }
    if writes.is_empty() {
        return Ok(());
    }
    let mut statements = HashMap::new();
    for write in &writes {
        if !statements.contains_key(write.statement) {
            let prepared = client.prepare_cached(write.statement).await?;
            statements.insert(write.statement, prepared);
        }
    }
    let params: Vec<Vec<&(dyn ToSql + Sync)>> = writes
        .iter()
        .map(|write| {
            write
                .params
                .iter()
                .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();
    let mut requests = Vec::with_capacity(writes.len());
    for (write, params) in writes.iter().zip(&params) {
        if let Some(statement) = statements.get(write.statement) {
            requests.push(Box::pin(client.execute(statement, params)));
        }
    }
    for answer in crate::db::pipelined(requests).await {
        answer?;
    }
    Ok(())
}

/// The writes one event asks for.
fn writes_of(appended: &Appended<'_>, writes: &mut Vec<Write>) {
    let Appended {
        tenant_id,
        position,
        event,
        occurred_at,
    } = *appended;
    let status = |user_id: Uuid, status: &'static str| {
        write(
            SET_STATUS,
            vec![Box::new(user_id), Box::new(status), Box::new(position)],
        )
    };
    let end_sessions = |user_id: Uuid| {
        write(
            END_SESSIONS,
            vec![Box::new(user_id), Box::new(occurred_at), Box::new(position)],
        )
    };
    match event {
        DomainEvent::Tenant { .. }
        | DomainEvent::Team { .. }
        | DomainEvent::Invitation { .. }
        | DomainEvent::Import { .. }
        | DomainEvent::Webhook { .. } => {}
        DomainEvent::User { user_id, event } => {
            let user_id = *user_id;
            match event {
                UserEvent::MemberJoined { role, .. } => writes.push(write(
                    JOIN,
                    vec![
                        Box::new(user_id),
                        Box::new(tenant_id),
                        Box::new(role.as_str()),
                        Box::new(position),
                    ],
                )),
                UserEvent::MemberRoleChanged { new_role, .. } => writes.push(write(
                    SET_ROLE,
                    vec![
                        Box::new(user_id),
                        Box::new(new_role.as_str()),
                        Box::new(position),
                    ],
                )),
                UserEvent::Deactivated { .. } => {
                    writes.push(status(user_id, "deactivated"));
                    writes.push(end_sessions(user_id));
                }
                UserEvent::Reactivated { .. } => writes.push(status(user_id, "active")),
                // Locked out at once, until restored or purged.
                UserEvent::DeletionScheduled { .. } => {
                    writes.push(status(user_id, "deletion_scheduled"));
                    writes.push(end_sessions(user_id));
                }
                UserEvent::DeletionCancelled { status: to, .. } => {
                    writes.push(status(user_id, to.as_str()));
                }
                UserEvent::MemberRemoved { .. } | UserEvent::Deleted { .. } => {
                    writes.push(write(REMOVE, vec![Box::new(user_id)]));
                    writes.push(end_sessions(user_id));
                }
                UserEvent::PlatformAdminGranted { .. } => writes.push(write(
                    GRANT_PLATFORM_ADMIN,
                    vec![Box::new(user_id), Box::new(position)],
                )),
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
            }
        }
        DomainEvent::Session { session_id, event } => match event {
            SessionEvent::LoggedIn {
                user_id,
                refresh_token_hash,
                expires_at,
                ..
            } => writes.push(write(
                OPEN_SESSION,
                vec![
                    Box::new(*session_id),
                    Box::new(tenant_id),
                    Box::new(*user_id),
                    Box::new(refresh_token_hash.as_bytes().to_vec()),
                    Box::new(occurred_at),
                    Box::new(*expires_at),
                    Box::new(position),
                ],
            )),
            SessionEvent::Refreshed {
                refresh_token_hash,
                expires_at,
                ..
            } => writes.push(write(
                REFRESH,
                vec![
                    Box::new(*session_id),
                    Box::new(refresh_token_hash.as_bytes().to_vec()),
                    Box::new(*expires_at),
                    Box::new(position),
                ],
            )),
            SessionEvent::Revoked { .. } => writes.push(write(
                REVOKE,
                vec![
                    Box::new(*session_id),
                    Box::new(occurred_at),
                    Box::new(position),
                ],
            )),
        },
    }
}
