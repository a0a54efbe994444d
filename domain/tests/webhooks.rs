//! The webhook aggregate, given/when/then: only the tenant's admins register, change, rotate
//! and delete; URLs and event type filters are checked; a change that changes nothing
//! appends nothing; the secret's version only grows.

use chrono::{TimeZone, Utc};
use domain::event::WebhookEvent;
use domain::webhook::{
    CreateWebhook, Webhook, WebhookChanges, create, delete, matches_types, parse_event_types,
    parse_url, rotate_secret, update,
};
use domain::{Actor, Context, DomainError, Role};
use proptest::prelude::*;
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(1);
const ADMIN: Uuid = Uuid::from_u128(2);
const WEBHOOK: Uuid = Uuid::from_u128(3);

fn context(tenant_id: Uuid, role: Role) -> Context {
    Context {
        now: Utc
            .with_ymd_and_hms(2026, 12, 6, 10, 0, 0)
            .single()
            .expect("time"),
        actor: Actor::User {
            user_id: ADMIN,
            tenant_id,
            role,
        },
    }
}

fn admin() -> Context {
    context(TENANT, Role::Admin)
}

fn registration() -> CreateWebhook {
    CreateWebhook {
        webhook_id: WEBHOOK,
        tenant_id: TENANT,
        url: "https://hooks.example.com/eventra".into(),
        event_types: vec!["user.created".into()],
        description: Some("CRM".into()),
    }
}

/// Given the events, the state.
fn given(events: &[WebhookEvent]) -> Webhook {
    let mut webhook = Webhook::default();
    for event in events {
        webhook.apply(event);
    }
    webhook
}

fn registered() -> Vec<WebhookEvent> {
    create(&Webhook::default(), registration(), &admin()).expect("created")
}

#[test]
fn an_admin_registers_a_webhook_with_the_first_secret_version() {
    let events = registered();
    assert_eq!(
        events,
        vec![WebhookEvent::Created {
            webhook_id: WEBHOOK,
            tenant_id: TENANT,
            url: "https://hooks.example.com/eventra".into(),
            event_types: vec!["user.created".into()],
            description: Some("CRM".into()),
            secret_version: 1,
            created_by: ADMIN,
        }]
    );
    let state = given(&events);
    assert!(state.exists() && state.enabled);
    assert!(state.wants("user.created"));
    assert!(!state.wants("user.deleted"));
}

#[test]
fn members_and_other_tenants_admins_may_not_touch_a_webhook() {
    for context in [
        context(TENANT, Role::Member),
        context(Uuid::from_u128(9), Role::Admin),
        Context {
            now: admin().now,
            actor: Actor::Anonymous,
        },
    ] {
        assert_eq!(
            create(&Webhook::default(), registration(), &context),
            Err(DomainError::NotAllowed)
        );
        let state = given(&registered());
        assert_eq!(
            rotate_secret(&state, &context),
            Err(DomainError::NotAllowed)
        );
        assert_eq!(delete(&state, &context), Err(DomainError::NotAllowed));
    }
}

#[test]
fn a_change_appends_only_what_differs_and_pausing_stops_the_wanting() {
    let state = given(&registered());
    let same = WebhookChanges {
        url: Some(state.url.clone()),
        event_types: Some(state.event_types.clone()),
        enabled: Some(true),
    };
    assert_eq!(update(&state, same, &admin()), Ok(Vec::new()));
    let events = update(
        &state,
        WebhookChanges {
            enabled: Some(false),
            event_types: Some(vec!["*".into()]),
            ..Default::default()
        },
        &admin(),
    )
    .expect("updated");
    assert_eq!(
        events,
        vec![WebhookEvent::Updated {
            webhook_id: WEBHOOK,
            url: None,
            event_types: Some(vec!["*".into()]),
            enabled: Some(false),
            updated_by: ADMIN,
        }]
    );
    let mut all = registered();
    all.extend(events);
    let paused = given(&all);
    assert!(
        !paused.wants("user.deleted"),
        "a paused webhook wants nothing"
    );
}

#[test]
fn rotations_count_up_and_a_deleted_webhook_is_gone() {
    let mut events = registered();
    for expected in 2..5 {
        let rotated = rotate_secret(&given(&events), &admin()).expect("rotated");
        assert!(matches!(
            rotated.as_slice(),
            [WebhookEvent::SecretRotated { secret_version, .. }] if *secret_version == expected
        ));
        events.extend(rotated);
    }
    events.extend(delete(&given(&events), &admin()).expect("deleted"));
    let gone = given(&events);
    assert!(!gone.exists());
    assert_eq!(delete(&gone, &admin()), Err(DomainError::WebhookNotFound));
    assert_eq!(
        rotate_secret(&gone, &admin()),
        Err(DomainError::WebhookNotFound)
    );
    assert_eq!(
        create(&gone, registration(), &admin()),
        Err(DomainError::WebhookAlreadyExists)
    );
    assert_eq!(
        rotate_secret(&Webhook::default(), &admin()),
        Err(DomainError::WebhookNotFound)
    );
}

#[test]
fn urls_must_be_https_with_a_host_and_nothing_hidden() {
    for good in [
        "https://hooks.example.com/eventra",
        "https://hooks.example.com:8443/a?b=c",
        "http://127.0.0.1:9000/hook",
    ] {
        assert!(parse_url(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "ftp://hooks.example.com/",
        "hooks.example.com/eventra",
        "https://",
        "https://user:pass@hooks.example.com/",
        "https://hooks.example.com/#fragment",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/\u{7}",
    ] {
        assert!(parse_url(bad).is_err(), "{bad:?}");
    }
    assert!(parse_url(&format!("https://h.example/{}", "a".repeat(2048))).is_err());
}

#[test]
fn event_type_filters_name_known_types_or_all() {
    let known = |t: &str| t == "user.created" || t == "user.deleted";
    assert_eq!(
        parse_event_types(
            &[
                "user.created".into(),
                "user.created".into(),
                "user.deleted".into()
            ],
            known
        ),
        Ok(vec!["user.created".into(), "user.deleted".into()])
    );
    assert_eq!(
        parse_event_types(&["*".into()], known),
        Ok(vec!["*".into()])
    );
    assert!(parse_event_types(&[], known).is_err());
    assert!(parse_event_types(&["user.nothing".into()], known).is_err());
    let too_many: Vec<String> = (0..101).map(|_| "user.created".to_owned()).collect();
    assert!(parse_event_types(&too_many, known).is_err());
}

proptest! {
    #[test]
    fn a_filter_takes_exactly_its_types_or_everything(
        types in proptest::collection::vec("[a-z]{1,5}\\.[a-z]{1,5}", 1..5),
        probe in "[a-z]{1,5}\\.[a-z]{1,5}",
    ) {
        prop_assert_eq!(matches_types(&types, &probe), types.contains(&probe));
        let mut all = types.clone();
        all.push("*".into());
        prop_assert!(matches_types(&all, &probe));
    }
}
