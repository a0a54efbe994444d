//! Loading aggregate state: the recorded events of a stream, folded by the domain.

use std::sync::Arc;

use domain::{DomainEvent, Session, Tenant, TenantMembers, User};
use infra::envelope::RecordedEvent;
use infra::store::{Kept, UnitOfWork};
use uuid::Uuid;

use api_common::error::ApiError;

/// A folded aggregate with what the store knows about its stream.
pub struct Loaded<S> {
    pub state: S,
    /// The stream's version (its last sequence), for the expected version of an append.
    pub version: i64,
    /// The position of the stream's last event, answered when a command changes nothing.
    pub last_position: i64,
}

fn decode(event: &RecordedEvent) -> Result<DomainEvent, ApiError> {
    event.to_domain().map_err(ApiError::internal)
}

fn loaded<S>(state: S, events: &[RecordedEvent]) -> Loaded<S> {
    Loaded {
        state,
        version: events.last().map_or(0, |e| e.sequence),
        last_position: events.last().map_or(0, |e| e.position),
    }
}

pub async fn tenant(unit: &UnitOfWork, tenant_id: Uuid) -> Result<Loaded<Tenant>, ApiError> {
    let events = unit.load_stream("tenant", tenant_id).await?;
    let mut tenant = Tenant::default();
    for event in &events {
        if let DomainEvent::Tenant { event, .. } = decode(event)? {
            tenant.apply(&event);
        }
    }
    Ok(loaded(tenant, &events))
}

/// A user, folded from the state an earlier command of this process kept (if any) and the
/// events appended to the stream since.
pub async fn user(unit: &UnitOfWork, user_id: Uuid) -> Result<Loaded<User>, ApiError> {
    let kept = unit.kept("user", user_id).and_then(|kept| {
        let user = kept.state.downcast_ref::<User>()?.clone();
        Some(Loaded {
            state: user,
            version: kept.version,
            last_position: kept.last_position,
        })
    });
    let mut user = kept.unwrap_or(Loaded {
        state: User::default(),
        version: 0,
        last_position: 0,
    });
    let events = unit
        .load_stream_after("user", user_id, user.version)
        .await?;
    for recorded in &events {
        if let DomainEvent::User { event, .. } = decode(recorded)? {
            user.state.apply_at(&event, recorded.occurred_at);
        }
        user.version = recorded.sequence;
        user.last_position = recorded.position;
    }
    if !events.is_empty() {
        unit.keep(
            "user",
            user_id,
            Kept {
                state: Arc::new(user.state.clone()),
                version: user.version,
                last_position: user.last_position,
            },
        );
    }
    Ok(user)
}

pub async fn session(unit: &UnitOfWork, session_id: Uuid) -> Result<Loaded<Session>, ApiError> {
    let events = unit.load_stream("session", session_id).await?;
    let mut session = Session::default();
    for recorded in &events {
        if let DomainEvent::Session { event, .. } = decode(recorded)? {
            session.apply(&event, recorded.occurred_at);
        }
    }
    Ok(loaded(session, &events))
}

/// The tenant's membership view. Call only after locking the tenant's membership.
pub async fn members(unit: &UnitOfWork, tenant_id: Uuid) -> Result<TenantMembers, ApiError> {
    let events = unit.load_membership_events(tenant_id).await?;
    let mut members = TenantMembers::new(tenant_id);
    for recorded in &events {
        if let DomainEvent::User { user_id, event } = decode(recorded)? {
            members.apply(user_id, &event);
        }
    }
    Ok(members)
}
