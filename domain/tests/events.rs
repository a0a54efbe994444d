//! The events as the contract publishes them (`docs/events.md`): every type's name, stream,
//! schema version and personal fields, held against the code.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use domain::event::{
    ClearableField, EventKind, ImportCounts, ImportEvent, InvitationEvent, LoginFailure,
    RemovalReason, RevocationReason, RowError, SessionEvent, TeamDeparture, TeamEvent, TenantEvent,
    UserEvent,
};
use domain::{Actor, DomainEvent, Plan, Role};
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(1);
const USER: Uuid = Uuid::from_u128(2);
const SESSION: Uuid = Uuid::from_u128(3);
const ADMIN: Uuid = Uuid::from_u128(4);
const TEAM: Uuid = Uuid::from_u128(5);
const INVITATION: Uuid = Uuid::from_u128(6);
const IMPORT: Uuid = Uuid::from_u128(7);

/// Personal values the samples carry; none may appear outside the personal fields.
const PERSONAL: [&str; 5] = [
    "ada@example.com",
    "Ada Lovelace",
    "+4915112345678",
    "$argon2id$v=19$x",
    "Mozilla/5.0 (X11; Linux x86_64)",
];

/// One event of every type.
fn every_event() -> Vec<DomainEvent> {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let tenant = |event| DomainEvent::Tenant {
        tenant_id: TENANT,
        event,
    };
    let user = |event| DomainEvent::User {
        user_id: USER,
        event,
    };
    let session = |event| DomainEvent::Session {
        session_id: SESSION,
        event,
    };
    let team = |event| DomainEvent::Team {
        team_id: TEAM,
        event,
    };
    let invitation = |event| DomainEvent::Invitation {
        invitation_id: INVITATION,
        event,
    };
    let import = |event| DomainEvent::Import {
        import_id: IMPORT,
        event,
    };
    let counts = ImportCounts {
        processed: 3,
        created: 1,
        skipped: 1,
        failed: 1,
    };
    vec![
        import(ImportEvent::Started {
            import_id: IMPORT,
            tenant_id: TENANT,
            format: "csv".into(),
            total: 3,
            started_by: ADMIN,
        }),
        import(ImportEvent::Progressed {
            import_id: IMPORT,
            counts,
            errors: vec![RowError {
                row: 2,
                reason: "email: must look like name@example.com".into(),
            }],
        }),
        import(ImportEvent::Completed {
            import_id: IMPORT,
            counts,
        }),
        import(ImportEvent::Failed {
            import_id: IMPORT,
            counts,
            reason: "the uploaded rows are gone".into(),
        }),
        import(ImportEvent::Cancelled {
            import_id: IMPORT,
            counts,
            cancelled_by: Some(ADMIN),
        }),
        team(TeamEvent::Created {
            team_id: TEAM,
            tenant_id: TENANT,
            name: "Front desk".into(),
            description: Some("Reception".into()),
            created_by: ADMIN,
        }),
        team(TeamEvent::Updated {
            team_id: TEAM,
            name: Some("Night desk".into()),
            description: Some(String::new()),
            updated_by: ADMIN,
        }),
        team(TeamEvent::Deleted {
            team_id: TEAM,
            deleted_by: ADMIN,
        }),
        team(TeamEvent::MembersAdded {
            team_id: TEAM,
            user_ids: vec![USER],
            added_by: ADMIN,
        }),
        team(TeamEvent::MembersRemoved {
            team_id: TEAM,
            user_ids: vec![USER],
            removed_by: ADMIN,
            reason: TeamDeparture::LeftTenant,
        }),
        invitation(InvitationEvent::Created {
            invitation_id: INVITATION,
            tenant_id: TENANT,
            user_id: USER,
            email: PERSONAL[0].into(),
            role: Role::Member,
            team_ids: vec![TEAM],
            token_hash: "2".repeat(64),
            expires_at: at,
            invited_by: ADMIN,
            import_id: None,
        }),
        invitation(InvitationEvent::Resent {
            invitation_id: INVITATION,
            token_hash: "3".repeat(64),
            expires_at: at,
            resent_by: ADMIN,
        }),
        invitation(InvitationEvent::Revoked {
            invitation_id: INVITATION,
            revoked_by: ADMIN,
        }),
        invitation(InvitationEvent::Accepted {
            invitation_id: INVITATION,
            user_id: USER,
            new_account: true,
        }),
        invitation(InvitationEvent::Expired {
            invitation_id: INVITATION,
            expires_at: at,
        }),
        tenant(TenantEvent::Created {
            tenant_id: TENANT,
            name: "Acme".into(),
            plan: Plan::Premium,
            admin_user_id: USER,
        }),
        tenant(TenantEvent::RateLimitChanged {
            tenant_id: TENANT,
            requests_per_hour: Some(10),
        }),
        tenant(TenantEvent::SettingsChanged {
            tenant_id: TENANT,
            name: Some("Acme".into()),
            signup_policy: Some(domain::SignupPolicy::EmailDomain),
            allowed_domains: Some(vec!["acme.example".into()]),
            deletion_grace_days: Some(14),
            invitation_expiry_notices: Some(false),
            require_verified_email: None,
            changed_by: ADMIN,
        }),
        user(UserEvent::Created {
            user_id: USER,
            tenant_id: TENANT,
            email: PERSONAL[0].into(),
            display_name: PERSONAL[1].into(),
            password_hash: PERSONAL[3].into(),
            email_verification: Some(domain::event::EmailLink {
                token_hash: "9f86d081884c7d65".into(),
                expires_at: at,
            }),
            source: Some(domain::event::UserSource::Import),
        }),
        user(UserEvent::MemberJoined {
            tenant_id: TENANT,
            user_id: USER,
            role: Role::Member,
        }),
        user(UserEvent::LoginFailed {
            user_id: USER,
            reason: LoginFailure::InvalidPassword,
        }),
        user(UserEvent::ProfileUpdated {
            user_id: USER,
            display_name: Some(PERSONAL[1].into()),
            phone: Some(PERSONAL[2].into()),
            locale: Some("de".into()),
            cleared: vec![ClearableField::Phone],
            updated_by: USER,
        }),
        user(UserEvent::MemberRoleChanged {
            tenant_id: TENANT,
            user_id: USER,
            old_role: Role::Member,
            new_role: Role::Admin,
            changed_by: ADMIN,
        }),
        user(UserEvent::Deactivated {
            user_id: USER,
            deactivated_by: ADMIN,
            by_admin: true,
        }),
        user(UserEvent::Reactivated {
            user_id: USER,
            reactivated_by: ADMIN,
        }),
        user(UserEvent::MemberRemoved {
            tenant_id: TENANT,
            user_id: USER,
            removed_by: ADMIN,
            reason: RemovalReason::Removed,
        }),
        user(UserEvent::PlatformAdminGranted { user_id: USER }),
        user(UserEvent::Locked {
            user_id: USER,
            until: at,
            failures: 5,
        }),
        user(UserEvent::Unlocked {
            user_id: USER,
            unlocked_by: None,
        }),
        user(UserEvent::PasswordChanged {
            user_id: USER,
            password_hash: PERSONAL[3].into(),
            changed_by: USER,
        }),
        user(UserEvent::PasswordResetRequested {
            user_id: USER,
            token_hash: "9f86d081884c7d65".into(),
            expires_at: at,
        }),
        user(UserEvent::PasswordReset {
            user_id: USER,
            password_hash: PERSONAL[3].into(),
        }),
        user(UserEvent::EmailChangeRequested {
            user_id: USER,
            new_email: PERSONAL[0].into(),
            token_hash: "9f86d081884c7d65".into(),
            expires_at: at,
        }),
        user(UserEvent::EmailVerified { user_id: USER }),
        user(UserEvent::EmailChanged {
            user_id: USER,
            old_email: "old-ada@example.com".into(),
            email: PERSONAL[0].into(),
        }),
        user(UserEvent::DeletionScheduled {
            user_id: USER,
            purge_at: at,
            scheduled_by: ADMIN,
            by_self: false,
        }),
        user(UserEvent::DeletionCancelled {
            user_id: USER,
            cancelled_by: ADMIN,
            status: domain::UserStatus::Active,
        }),
        user(UserEvent::Deleted {
            user_id: USER,
            deleted_by: ADMIN,
            erasure: true,
        }),
        session(SessionEvent::LoggedIn {
            session_id: SESSION,
            user_id: USER,
            tenant_id: TENANT,
            refresh_token_hash: "0".repeat(64),
            expires_at: at,
            user_agent: Some(PERSONAL[4].into()),
        }),
        session(SessionEvent::Refreshed {
            session_id: SESSION,
            user_id: USER,
            refresh_token_hash: "1".repeat(64),
            expires_at: at,
        }),
        session(SessionEvent::Revoked {
            session_id: SESSION,
            user_id: USER,
            revoked_by: Some(ADMIN),
            reason: RevocationReason::RefreshTokenReused,
        }),
    ]
}

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

/// The event as the store would split it: its serialised type tag and its data.
fn serialised(event: &DomainEvent) -> (String, serde_json::Value) {
    let value = match event {
        DomainEvent::Tenant { event, .. } => serde_json::to_value(event),
        DomainEvent::User { event, .. } => serde_json::to_value(event),
        DomainEvent::Session { event, .. } => serde_json::to_value(event),
        DomainEvent::Team { event, .. } => serde_json::to_value(event),
        DomainEvent::Invitation { event, .. } => serde_json::to_value(event),
        DomainEvent::Import { event, .. } => serde_json::to_value(event),
    }
    .expect("serialise");
    (
        value["type"].as_str().unwrap_or_default().to_owned(),
        value["data"].clone(),
    )
}

#[test]
fn every_event_type_is_documented_with_its_stream_and_personal_fields() {
    let documented = documented();
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
        assert_eq!(event.schema_version(), 1, "{name} is at version 1");
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
