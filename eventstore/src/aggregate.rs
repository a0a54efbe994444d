//! Folding a stream into the state a decision needs.

use chrono::{DateTime, Utc};
use domain::{
    DomainEvent, Invitation, InvitationEvent, Session, SessionEvent, Team, TeamEvent, Tenant,
    TenantEvent, TenantMembers, User, UserEvent,
};
use uuid::Uuid;

use crate::kept::{Cache, KeptStates};

/// A state folded from one stream. Implemented here for the domain's aggregates.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The stream's `aggregate_type`.
    const TYPE: &'static str;
    type Event: Clone + Send + Sync;
    /// Whether states of this type are kept between commands ([`Aggregate::cache`]).
    const KEPT: bool = false;

    /// The stream's events as domain events.
    fn wrap(id: Uuid, events: Vec<Self::Event>) -> Vec<DomainEvent>;

    /// This stream's event, if `event` is one.
    fn unwrap(event: DomainEvent) -> Option<Self::Event>;

    fn apply(&mut self, event: &Self::Event, at: DateTime<Utc>);

    /// Where states of this type are kept between commands, if they are.
    fn cache(_kept: &KeptStates) -> Option<&Cache<Self>> {
        None
    }
}

impl Aggregate for Tenant {
    const TYPE: &'static str = "tenant";
    type Event = TenantEvent;

    fn wrap(tenant_id: Uuid, events: Vec<TenantEvent>) -> Vec<DomainEvent> {
        events
            .into_iter()
            .map(|event| DomainEvent::Tenant { tenant_id, event })
            .collect()
    }

    fn unwrap(event: DomainEvent) -> Option<TenantEvent> {
        match event {
            DomainEvent::Tenant { event, .. } => Some(event),
            _ => None,
        }
    }

    fn apply(&mut self, event: &TenantEvent, _at: DateTime<Utc>) {
        Tenant::apply(self, event);
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Event = UserEvent;
    const KEPT: bool = true;

    fn wrap(user_id: Uuid, events: Vec<UserEvent>) -> Vec<DomainEvent> {
        DomainEvent::user(user_id, events)
    }

    fn unwrap(event: DomainEvent) -> Option<UserEvent> {
        match event {
            DomainEvent::User { event, .. } => Some(event),
            _ => None,
        }
    }

    fn apply(&mut self, event: &UserEvent, at: DateTime<Utc>) {
        self.apply_at(event, at);
    }

    fn cache(kept: &KeptStates) -> Option<&Cache<Self>> {
        Some(&kept.users)
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Event = SessionEvent;

    fn wrap(session_id: Uuid, events: Vec<SessionEvent>) -> Vec<DomainEvent> {
        DomainEvent::session(session_id, events)
    }

    fn unwrap(event: DomainEvent) -> Option<SessionEvent> {
        match event {
            DomainEvent::Session { event, .. } => Some(event),
            _ => None,
        }
    }

    fn apply(&mut self, event: &SessionEvent, at: DateTime<Utc>) {
        Session::apply(self, event, at);
    }
}

impl Aggregate for Team {
    const TYPE: &'static str = "team";
    type Event = TeamEvent;

    fn wrap(team_id: Uuid, events: Vec<TeamEvent>) -> Vec<DomainEvent> {
        events
            .into_iter()
            .map(|event| DomainEvent::Team { team_id, event })
            .collect()
    }

    fn unwrap(event: DomainEvent) -> Option<TeamEvent> {
        match event {
            DomainEvent::Team { event, .. } => Some(event),
            _ => None,
        }
    }

    fn apply(&mut self, event: &TeamEvent, _at: DateTime<Utc>) {
        Team::apply(self, event);
    }
}

impl Aggregate for Invitation {
    const TYPE: &'static str = "invitation";
    type Event = InvitationEvent;

    fn wrap(invitation_id: Uuid, events: Vec<InvitationEvent>) -> Vec<DomainEvent> {
        events
            .into_iter()
            .map(|event| DomainEvent::Invitation {
                invitation_id,
                event,
            })
            .collect()
    }

    fn unwrap(event: DomainEvent) -> Option<InvitationEvent> {
        match event {
            DomainEvent::Invitation { event, .. } => Some(event),
            _ => None,
        }
    }

    fn apply(&mut self, event: &InvitationEvent, _at: DateTime<Utc>) {
        Invitation::apply(self, event);
    }
}

/// Folds the membership events of a tenant's users and teams (in order) into its
/// membership view.
pub(crate) fn fold_members(
    tenant_id: Uuid,
    events: impl IntoIterator<Item = DomainEvent>,
) -> TenantMembers {
    let mut members = TenantMembers::new(tenant_id);
    for event in events {
        match event {
            DomainEvent::User { user_id, event } => members.apply(user_id, &event),
            DomainEvent::Team { team_id, event } => members.apply_team(team_id, &event),
            _ => {}
        }
    }
    members
}

impl Aggregate for domain::Import {
    const TYPE: &'static str = "import";
    type Event = domain::ImportEvent;

    fn wrap(import_id: Uuid, events: Vec<domain::ImportEvent>) -> Vec<DomainEvent> {
        events
            .into_iter()
            .map(|event| DomainEvent::Import { import_id, event })
            .collect()
    }

    fn unwrap(event: DomainEvent) -> Option<domain::ImportEvent> {
        match event {
            DomainEvent::Import { event, .. } => Some(event),
            _ => None,
        }
    }

    fn apply(&mut self, event: &domain::ImportEvent, _at: DateTime<Utc>) {
        domain::Import::apply(self, event);
    }
}

impl Aggregate for domain::Webhook {
    const TYPE: &'static str = "webhook";
    type Event = domain::WebhookEvent;

    fn wrap(webhook_id: Uuid, events: Vec<domain::WebhookEvent>) -> Vec<DomainEvent> {
        events
            .into_iter()
            .map(|event| DomainEvent::Webhook { webhook_id, event })
            .collect()
    }

    fn unwrap(event: DomainEvent) -> Option<domain::WebhookEvent> {
        match event {
            DomainEvent::Webhook { event, .. } => Some(event),
            _ => None,
        }
    }

    fn apply(&mut self, event: &domain::WebhookEvent, _at: DateTime<Utc>) {
        domain::Webhook::apply(self, event);
    }
}
