//! Loading aggregate state: the recorded events of a stream, folded by the domain.

use domain::{DomainEvent, Session, Tenant, TenantMembers, User};
use infra::envelope::RecordedEvent;
use infra::store::UnitOfWork;
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

pub async fn user(unit: &UnitOfWork, user_id: Uuid) -> Result<Loaded<User>, ApiError> {
    let events = unit.load_stream("user", user_id).await?;
    let mut user = User::default();
    for recorded in &events {
        if let DomainEvent::User { event, .. } = decode(recorded)? {
            user.apply_at(&event, recorded.occurred_at);
        }
    }
    Ok(loaded(user, &events))
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
