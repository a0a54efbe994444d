//! Given/when/then for the one-time links sent by email (password reset, address
//! confirmation and change), and a property: whatever happens, a link opens at most once,
//! never after it expired, and never once a newer link of its kind replaced it.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::event::{LoginFailure, RevocationReason, SessionEvent, UserEvent};
use domain::links::{self, RESET_REQUEST_INTERVAL};
use domain::user::{LoginOutcome, NewSession};
use domain::values::Email;
use domain::{Actor, Context, DomainError, Role, Session, User};
use proptest::prelude::*;
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const USER: Uuid = Uuid::from_u128(0x3e);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .expect("a time")
}

fn member() -> User {
    let mut user = User::default();
    for event in [
        UserEvent::Created {
            user_id: USER,
            tenant_id: TENANT,
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            password_hash: "old".into(),
            email_verification: None,
            source: None,
        },
        UserEvent::MemberJoined {
            tenant_id: TENANT,
            user_id: USER,
            role: Role::Member,
        },
    ] {
        user.apply_at(&event, now());
    }
    user
}

fn apply(user: &mut User, events: &[UserEvent], at: DateTime<Utc>) {
    for event in events {
        user.apply_at(event, at);
    }
}

fn as_self(now: DateTime<Utc>) -> Context {
    Context {
        now,
        actor: Actor::User {
            user_id: USER,
            tenant_id: TENANT,
            role: Role::Member,
        },
    }
}

#[test]
fn a_reset_link_sets_a_new_password_once_lifts_a_lock_and_verifies_the_address() {
    let mut user = member();
    apply(
        &mut user,
        &[UserEvent::Locked {
            user_id: USER,
            until: now() + Duration::minutes(5),
            failures: 5,
        }],
        now(),
    );
    let asked =
        links::request_password_reset(&user, "h1".into(), now() + Duration::minutes(30), now());
    assert!(matches!(
        asked[..],
        [UserEvent::PasswordResetRequested { .. }]
    ));
    apply(&mut user, &asked, now());

    // A wrong token opens nothing.
    assert_eq!(
        links::reset_password(&user, "other", "new".into(), now()),
        Err(DomainError::LinkInvalid)
    );
    let reset = links::reset_password(&user, "h1", "new".into(), now()).expect("reset");
    assert_eq!(
        reset,
        [
            UserEvent::PasswordReset {
                user_id: USER,
                password_hash: "new".into()
            },
            UserEvent::Unlocked {
                user_id: USER,
                unlocked_by: Some(USER)
            },
            UserEvent::EmailVerified { user_id: USER },
        ]
    );
    apply(&mut user, &reset, now());
    assert_eq!(user.password_hash, "new");
    assert!(user.email_verified && user.locked_until.is_none());
    assert!(matches!(
        links::reset_password(&user, "h1", "newer".into(), now()),
        Err(DomainError::LinkGone(_))
    ));
}

#[test]
fn a_reset_link_expires_is_replaced_by_a_newer_one_and_dies_with_a_password_change() {
    let mut user = member();
    let later = now() + RESET_REQUEST_INTERVAL + Duration::seconds(1);
    let first =
        links::request_password_reset(&user, "h1".into(), now() + Duration::minutes(30), now());
    apply(&mut user, &first, now());
    // Asked again within the interval: nothing; after it: a new link replacing the first.
    assert!(
        links::request_password_reset(&user, "h2".into(), now() + Duration::minutes(30), now())
            .is_empty()
    );
    let again =
        links::request_password_reset(&user, "h2".into(), later + Duration::minutes(30), later);
    assert_eq!(again.len(), 1);
    apply(&mut user, &again, later);
    assert_eq!(
        links::reset_password(&user, "h1", "x".into(), later),
        Err(DomainError::LinkInvalid)
    );
    assert!(matches!(
        links::reset_password(&user, "h2", "x".into(), later + Duration::minutes(31)),
        Err(DomainError::LinkGone(detail)) if detail.contains("expired")
    ));
    apply(
        &mut user,
        &[UserEvent::PasswordChanged {
            user_id: USER,
            password_hash: "changed".into(),
            changed_by: USER,
        }],
        later,
    );
    assert_eq!(
        links::reset_password(&user, "h2", "x".into(), later),
        Err(DomainError::LinkInvalid),
        "a change of password closes the open link"
    );
}

#[test]
fn no_reset_link_for_an_account_that_cannot_log_in() {
    let mut deactivated = member();
    apply(
        &mut deactivated,
        &[UserEvent::Deactivated {
            user_id: USER,
            deactivated_by: USER,
            by_admin: false,
        }],
        now(),
    );
    let mut removed = member();
    apply(
        &mut removed,
        &[UserEvent::MemberRemoved {
            tenant_id: TENANT,
            user_id: USER,
            removed_by: USER,
            reason: domain::event::RemovalReason::Left,
        }],
        now(),
    );
    for user in [User::default(), deactivated, removed] {
        assert!(
            links::request_password_reset(&user, "h".into(), now() + Duration::minutes(30), now())
                .is_empty()
        );
    }
}

#[test]
fn a_reset_ends_every_open_session_of_the_user_only() {
    let open = |session_id: u128, user_id: Uuid| {
        let mut session = Session::default();
        session.apply(
            &SessionEvent::LoggedIn {
                session_id: Uuid::from_u128(session_id),
                user_id,
                tenant_id: TENANT,
                refresh_token_hash: "r".into(),
                expires_at: now() + Duration::days(1),
                user_agent: None,
            },
            now(),
        );
        session
    };
    let sessions = [open(1, USER), open(2, USER), open(3, Uuid::from_u128(0x99))];
    let ended = links::end_all_sessions(&sessions, USER, RevocationReason::PasswordReset, now());
    assert_eq!(
        ended.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [Uuid::from_u128(1), Uuid::from_u128(2)]
    );
}

#[test]
fn the_welcome_link_verifies_the_address_once() {
    let mut events = vec![UserEvent::Created {
        user_id: USER,
        tenant_id: TENANT,
        email: "ada@example.com".into(),
        display_name: "Ada".into(),
        password_hash: "old".into(),
        email_verification: None,
        source: None,
    }];
    links::with_verification(&mut events, "w".into(), now() + Duration::days(1));
    let mut user = User::default();
    apply(&mut user, &events, now());
    apply(
        &mut user,
        &[UserEvent::MemberJoined {
            tenant_id: TENANT,
            user_id: USER,
            role: Role::Member,
        }],
        now(),
    );
    assert!(!user.email_verified);
    assert_eq!(
        links::confirm_email(&user, "w", now() + Duration::days(2)),
        Err(DomainError::LinkGone("the link has expired".into()))
    );
    let verified = links::confirm_email(&user, "w", now()).expect("verified");
    assert_eq!(verified, [UserEvent::EmailVerified { user_id: USER }]);
    apply(&mut user, &verified, now());
    assert!(user.email_verified);
    assert!(matches!(
        links::confirm_email(&user, "w", now()),
        Err(DomainError::LinkGone(_))
    ));
}

#[test]
fn an_address_change_waits_for_the_new_address_and_verification_is_required_where_asked() {
    let mut user = member();
    let new = Email::parse("ada@new.example").expect("an address");
    let expires = now() + Duration::days(1);
    assert_eq!(
        links::request_email_change(&user, false, &new, "h".into(), expires, &as_self(now())),
        Err(DomainError::WrongPassword)
    );
    let same = Email::parse("ADA@example.com").expect("an address");
    assert!(matches!(
        links::request_email_change(&user, true, &same, "h".into(), expires, &as_self(now())),
        Err(DomainError::Invalid(_))
    ));
    let anonymous = Context {
        now: now(),
        actor: Actor::Anonymous,
    };
    assert_eq!(
        links::request_email_change(&user, true, &new, "h".into(), expires, &anonymous),
        Err(DomainError::NotAllowed)
    );
    let asked =
        links::request_email_change(&user, true, &new, "h".into(), expires, &as_self(now()))
            .expect("asked");
    apply(&mut user, &asked, now());
    assert_eq!(
        user.email, "ada@example.com",
        "nothing moves before the link"
    );
    let confirmed = links::confirm_email(&user, "h", now()).expect("confirmed");
    assert_eq!(
        confirmed,
        [UserEvent::EmailChanged {
            user_id: USER,
            old_email: "ada@example.com".into(),
            email: "ada@new.example".into(),
        }]
    );
    apply(&mut user, &confirmed, now());
    assert_eq!(user.email, "ada@new.example");
    assert!(user.email_verified);
    assert!(matches!(
        links::confirm_email(&user, "h", now()),
        Err(DomainError::LinkGone(_))
    ));

    // The tenant's requirement turns a right password of an unverified account into a refusal.
    let unverified = member();
    let session = NewSession {
        session_id: Uuid::from_u128(0x5e),
        refresh_token_hash: "r".into(),
        expires_at: now() + Duration::days(1),
        user_agent: None,
    };
    let anonymous = Context {
        now: now(),
        actor: Actor::Anonymous,
    };
    let outcome =
        domain::user::log_in(&unverified, true, session.clone(), &anonymous).expect("decided");
    assert!(matches!(
        links::require_verified(outcome, &unverified, true),
        LoginOutcome::Failed(_, LoginFailure::EmailNotVerified)
    ));
    let outcome = domain::user::log_in(&user, true, session, &anonymous).expect("decided");
    assert!(matches!(
        links::require_verified(outcome, &user, true),
        LoginOutcome::Succeeded(_)
    ));
}

/// What can happen to an account's reset links.
#[derive(Debug, Clone)]
enum Step {
    /// Someone asks for a link (token `n`).
    Ask(u8),
    /// The holder of token `n` uses it.
    Use(u8),
    /// Time passes.
    Wait(i64),
    /// The user changes their password.
    Change,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4).prop_map(Step::Ask),
        (0u8..4).prop_map(Step::Use),
        (1i64..2_000).prop_map(Step::Wait),
        Just(Step::Change),
    ]
}

proptest! {
    #[test]
    fn a_reset_link_opens_at_most_once_before_it_expires_and_only_while_it_is_the_latest(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let ttl = Duration::minutes(30);
        let mut user = member();
        let mut now = now();
        let mut issued: Vec<(String, DateTime<Utc>)> = Vec::new();
        let mut used: Vec<String> = Vec::new();
        let mut latest: Option<String> = None;
        for step in steps {
            match step {
                Step::Ask(n) => {
                    let hash = format!("h{n}-{}", issued.len());
                    let events = links::request_password_reset(&user, hash.clone(), now + ttl, now);
                    if !events.is_empty() {
                        issued.push((hash.clone(), now + ttl));
                        latest = Some(hash);
                    }
                    apply(&mut user, &events, now);
                }
                Step::Use(n) => {
                    let Some((hash, expires_at)) = issued.get(usize::from(n) % issued.len().max(1)).cloned() else {
                        continue;
                    };
                    if let Ok(events) = links::reset_password(&user, &hash, format!("p-{hash}"), now) {
                        prop_assert!(!used.contains(&hash), "a link opened twice");
                        prop_assert!(now < expires_at, "an expired link opened");
                        prop_assert_eq!(latest.as_ref(), Some(&hash), "a replaced link opened");
                        used.push(hash);
                        apply(&mut user, &events, now);
                    }
                }
                Step::Wait(seconds) => now += Duration::seconds(seconds),
                Step::Change => {
                    latest = None;
                    apply(&mut user, &[UserEvent::PasswordChanged {
                        user_id: USER,
                        password_hash: "changed".into(),
                        changed_by: USER,
                    }], now);
                }
            }
        }
    }
}
