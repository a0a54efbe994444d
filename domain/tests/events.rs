//! The events as the contract publishes them (`docs/events.md`): every type's name, stream,
//! schema version and personal fields, held against the code.

mod samples;

use std::collections::BTreeMap;

use domain::event::{
    EventKind, InvitationEvent, RevocationReason, SessionEvent, TeamEvent, TenantEvent, UserEvent,
};
use domain::{Actor, DomainEvent, Role};
use samples::{
    ADMIN, IMPORT, INVITATION, PERSONAL, SESSION, TEAM, TENANT, USER, WEBHOOK, every_event,
    serialised,
};

/// `docs/events.md`'s types table: type → (stream, personal fields).
fn documented() -> BTreeMap<String, (String, Vec<String>)> {
    let text = include_str!("../../docs/events.md");
    let cell = |cell: &str| cell.trim().trim_matches('`').to_owned();
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            let [name, stream, _, personal] = cells.as_slice() else {
                return None;
            };
            let personal = personal
                .split(',')
                .map(cell)
                .filter(|field| !field.is_empty() && field != "—")
                .collect();
            Some((cell(name), (cell(stream), personal)))
        })
        .filter(|(name, _)| name.contains('.'))
        .collect()
}

/// `docs/events.md`'s versions table: type → current version (the types not in it are at 1).
fn documented_versions() -> BTreeMap<String, i32> {
    include_str!("../../docs/events.md")
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            let [name, version, _] = cells.as_slice() else {
                return None;
            };
            Some((
                name.trim().trim_matches('`').to_owned(),
                version.trim().parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn every_event_type_is_documented_with_its_stream_and_personal_fields() {
    let documented = documented();
    let versions = documented_versions();
    let events = every_event();
    let mut seen = Vec::new();
    for event in &events {
        let name = event.event_type();
        let (tag, data) = serialised(event);
        assert_eq!(tag, name, "the serialised tag is the type name");
        let (stream, personal) = documented
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in docs/events.md"));
        assert_eq!(event.aggregate_type(), stream, "{name}'s stream");
        assert_eq!(
            event.schema_version(),
            versions.get(name).copied().unwrap_or(1),
            "{name}'s version"
        );
        assert_eq!(
            event.personal_fields(),
            personal.iter().map(String::as_str).collect::<Vec<_>>(),
            "{name}'s personal fields"
        );
        for field in event.personal_fields() {
            assert!(data.get(field).is_some(), "{name} has no {field}");
        }
        seen.push(name.to_owned());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), events.len(), "one sample per type");
    assert_eq!(
        seen,
        documented.keys().cloned().collect::<Vec<_>>(),
        "docs/events.md documents exactly the types the code has"
    );
}

#[test]
fn personal_values_appear_only_in_personal_fields() {
    for event in every_event() {
        let (_, data) = serialised(&event);
        let mut rest = data.clone();
        for field in event.personal_fields() {
            if let Some(object) = rest.as_object_mut() {
                object.remove(*field);
            }
        }
        let text = rest.to_string();
        for value in PERSONAL {
            assert!(
                !text.contains(value),
                "{} carries {value} outside its personal fields",
                event.event_type()
            );
        }
    }
}

#[test]
fn the_data_subject_is_the_user_of_an_event_with_personal_data_only() {
    for event in every_event() {
        let expected = match &event {
            DomainEvent::User { user_id, .. } if !event.personal_fields().is_empty() => {
                Some(*user_id)
            }
            DomainEvent::Session {
                event: SessionEvent::LoggedIn { user_id, .. },
                ..
            } => Some(*user_id),
            // The invited address is the invited account's (sealed with its key).
            DomainEvent::Invitation {
                event: InvitationEvent::Created { user_id, .. },
                ..
            } => Some(*user_id),
            _ => None,
        };
        assert_eq!(event.data_subject(), expected, "{}", event.event_type());
        let id = match &event {
            DomainEvent::Tenant { .. } => TENANT,
            DomainEvent::User { .. } => USER,
            DomainEvent::Session { .. } => SESSION,
            DomainEvent::Team { .. } => TEAM,
            DomainEvent::Invitation { .. } => INVITATION,
            DomainEvent::Import { .. } => IMPORT,
            DomainEvent::Webhook { .. } => WEBHOOK,
        };
        assert_eq!(event.aggregate_id(), id, "{}", event.event_type());
    }
    assert_eq!(
        DomainEvent::user(
            USER,
            vec![UserEvent::PlatformAdminGranted { user_id: USER }]
        )
        .iter()
        .map(DomainEvent::aggregate_id)
        .collect::<Vec<_>>(),
        [USER]
    );
    assert_eq!(
        DomainEvent::session(
            SESSION,
            vec![SessionEvent::Revoked {
                session_id: SESSION,
                user_id: USER,
                revoked_by: None,
                reason: RevocationReason::Logout,
            }]
        )
        .iter()
        .map(DomainEvent::aggregate_id)
        .collect::<Vec<_>>(),
        [SESSION]
    );
    assert_eq!(TenantEvent::AGGREGATE_TYPE, "tenant");
    assert_eq!(UserEvent::AGGREGATE_TYPE, "user");
    assert_eq!(SessionEvent::AGGREGATE_TYPE, "session");
    assert_eq!(TeamEvent::AGGREGATE_TYPE, "team");
    assert_eq!(InvitationEvent::AGGREGATE_TYPE, "invitation");
}

#[test]
fn an_actor_names_its_user_unless_anonymous() {
    assert_eq!(Actor::Anonymous.user_id(), None);
    assert_eq!(
        Actor::User {
            user_id: USER,
            tenant_id: TENANT,
            role: Role::Member
        }
        .user_id(),
        Some(USER)
    );
    assert_eq!(
        Actor::PlatformAdmin { user_id: ADMIN }.user_id(),
        Some(ADMIN)
    );
}
