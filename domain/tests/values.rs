//! The value rules at their edges: the longest accepted value and the first refused one.

use chrono::{TimeZone, Utc};
use domain::DomainError;
use domain::event::UserEvent;
use domain::user::ProfileChanges;
use domain::values::{DisplayName, Email, Locale, Password, Phone, TenantName};
use domain::{Actor, Context, Plan, Role, TenantMembers, User, UserStatus};
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const ADMIN: Uuid = Uuid::from_u128(0xad);
const SECOND: Uuid = Uuid::from_u128(0xa2);

#[test]
fn an_email_may_have_254_bytes_a_64_byte_local_part_and_63_byte_labels() {
    let local = |n: usize| "l".repeat(n);
    let label = |n: usize| "d".repeat(n);
    assert!(Email::parse(&format!("{}@example.com", local(64))).is_ok());
    assert!(Email::parse(&format!("{}@example.com", local(65))).is_err());
    assert!(Email::parse(&format!("a@{}.com", label(63))).is_ok());
    assert!(Email::parse(&format!("a@{}.com", label(64))).is_err());
    // 254 bytes in all: a@ and a domain of 252.
    let domain = format!("{0}.{0}.{0}.{1}", label(63), label(60));
    assert_eq!(domain.len(), 252);
    let exactly = format!("a@{domain}");
    assert_eq!(exactly.len(), 254, "{exactly}");
    assert!(Email::parse(&exactly).is_ok());
    let over = format!("ab@{domain}");
    assert_eq!(over.len(), 255);
    assert!(Email::parse(&over).is_err());
    assert!(Email::parse("").is_err());
    assert!(Email::parse("a@b").is_err());
    assert!(Email::parse("a@b.").is_err());
}

#[test]
fn a_password_has_10_to_128_characters_is_not_one_character_repeated_nor_the_email() {
    let email = &Email::parse("Ada@Example.com").expect("an address");
    assert!(Password::parse(&"ab".repeat(5), email).is_ok());
    assert!(
        Password::parse(&format!("{}a", "ab".repeat(4)), email).is_err(),
        "9 characters"
    );
    assert!(Password::parse(&"ab".repeat(64), email).is_ok());
    assert!(
        Password::parse(&format!("{}a", "ab".repeat(64)), email).is_err(),
        "129"
    );
    // Characters, not bytes: ten two-byte characters are long enough.
    assert!(Password::parse(&"äö".repeat(5), email).is_ok());
    assert!(Password::parse(&"x".repeat(20), email).is_err());
    assert!(Password::parse(" ada@example.COM ", email).is_err());
    assert!(Password::parse("ada@example.co", email).is_ok());
}

#[test]
fn the_most_common_passwords_are_refused_whatever_their_case() {
    let email = &Email::parse("ada@example.com").expect("an address");
    for common in [
        "password123",
        "Password123",
        "PASSWORD123",
        "qwertyuiop",
        "1q2w3e4r5t",
    ] {
        let refused = Password::parse(common, email).expect_err(common);
        assert!(refused.to_string().contains("most common"), "{refused}");
    }
    // The shipped list is the top 10,000, and every entry is a plain line.
    let list = include_str!("../data/common-passwords.txt");
    let entries: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(entries.len(), 10_000);
    assert!(entries.iter().all(|e| !e.is_empty() && e.trim() == *e));
    assert!(domain::values::is_common_password("123456"));
    assert!(!domain::values::is_common_password(
        "correct horse battery staple"
    ));
    assert!(Password::parse("correct horse battery", email).is_ok());
}

#[test]
fn names_have_1_to_100_characters_and_no_control_characters() {
    fn display_name(input: &str) -> Result<(), DomainError> {
        DisplayName::parse(input).map(|_| ())
    }
    fn tenant_name(input: &str) -> Result<(), DomainError> {
        TenantName::parse(input).map(|_| ())
    }
    for validate in [display_name, tenant_name] {
        assert!(validate(&"n".repeat(100)).is_ok());
        assert!(validate(&"ä".repeat(100)).is_ok(), "characters, not bytes");
        assert!(validate(&"n".repeat(101)).is_err());
        assert!(validate("n").is_ok());
        assert!(validate("").is_err());
        assert!(validate("   ").is_err());
        assert!(validate("Ada\u{7}").is_err());
        assert!(validate("Ada\nLovelace").is_err());
    }
}

#[test]
fn a_phone_number_is_a_plus_and_8_to_15_digits() {
    assert!(Phone::parse("+12345678").is_ok());
    assert!(Phone::parse("+123456789012345").is_ok());
    assert!(Phone::parse("+1234567").is_err());
    assert!(Phone::parse("+1234567890123456").is_err());
    assert!(Phone::parse("12345678").is_err());
    assert!(Phone::parse("+1234 5678").is_err());
    assert!(Phone::parse("+1234567a").is_err());
    assert!(Phone::parse("+").is_err());
}

#[test]
fn a_locale_is_a_language_tag_of_short_parts_up_to_35_bytes() {
    for good in [
        "en",
        "de-CH",
        "zh-Hant-TW",
        "sr-Latn-RS",
        "es-419",
        "abcdefgh",
    ] {
        assert!(Locale::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "e n",
        "de_CH",
        "-de",
        "de-",
        "de--CH",
        "abcdefghi",
        "419",
        "1a-DE",
        "de-CH!",
    ] {
        assert!(Locale::parse(bad).is_err(), "{bad:?}");
    }
    let longest = format!("en-{}", ["abcdefgh"; 4].join("-"));
    assert_eq!(longest.len(), 38);
    assert!(Locale::parse(&longest).is_err(), "over 35 bytes");
    let fits = format!(
        "en-{}",
        ["abcdefgh", "abcdefgh", "abcdefgh", "abcde"].join("-")
    );
    assert_eq!(fits.len(), 35);
    assert!(Locale::parse(&fits).is_ok());
}

#[test]
fn roles_plans_and_statuses_have_their_contract_names() {
    assert_eq!(Role::Admin.as_str(), "admin");
    assert_eq!(Role::Member.as_str(), "member");
    assert_eq!(Plan::Standard.as_str(), "standard");
    assert_eq!(Plan::Premium.as_str(), "premium");
    assert_eq!(UserStatus::Active.as_str(), "active");
    assert_eq!(UserStatus::Deactivated.as_str(), "deactivated");
}

fn admin(user_id: Uuid) -> Vec<UserEvent> {
    vec![
        UserEvent::Created {
            user_id,
            tenant_id: TENANT,
            email: format!("{user_id}@example.com"),
            display_name: "Admin".into(),
            password_hash: "hash".into(),
            email_verification: None,
            source: None,
        },
        UserEvent::MemberJoined {
            tenant_id: TENANT,
            user_id,
            role: Role::Admin,
        },
    ]
}

fn context(actor: Actor) -> Context {
    Context {
        now: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("time"),
        actor,
    }
}

#[test]
fn one_of_two_admins_may_be_demoted() {
    let mut members = TenantMembers::new(TENANT);
    for id in [ADMIN, SECOND] {
        for event in admin(id) {
            members.apply(id, &event);
        }
    }
    let second = User::from_events(&admin(SECOND));
    let decided = domain::user::change_role(
        &members,
        &second,
        Role::Member,
        &context(Actor::User {
            user_id: ADMIN,
            tenant_id: TENANT,
            role: Role::Admin,
        }),
    );
    assert!(
        matches!(
            decided.as_deref(),
            Ok([UserEvent::MemberRoleChanged {
                new_role: Role::Member,
                ..
            }])
        ),
        "{decided:?}"
    );
}

#[test]
fn a_user_folded_from_events_is_the_user_they_describe() {
    let mut events = admin(ADMIN);
    events.push(UserEvent::LoginFailed {
        user_id: ADMIN,
        reason: domain::event::LoginFailure::InvalidPassword,
    });
    events.push(UserEvent::LoginFailed {
        user_id: ADMIN,
        reason: domain::event::LoginFailure::InvalidPassword,
    });
    let user = User::from_events(&events);
    assert_eq!(user.user_id, Some(ADMIN));
    assert_eq!(user.role, Some(Role::Admin));
    assert_eq!(user.failed_logins, 2);
    assert_eq!(user.version, 4);
}

#[test]
fn a_platform_admin_may_update_a_profile_and_grant_is_recorded_once() {
    let user = User::from_events(&admin(ADMIN));
    let operator = Uuid::from_u128(0x9a);
    let decided = domain::user::update_profile(
        &user,
        ProfileChanges {
            locale: Some(Locale::parse("de").expect("a locale")),
            ..Default::default()
        },
        &context(Actor::PlatformAdmin { user_id: operator }),
    );
    assert!(
        matches!(decided.as_deref(), Ok([UserEvent::ProfileUpdated { updated_by, locale: Some(l), .. }]) if *updated_by == operator && l == "de"),
        "{decided:?}"
    );
    let mut updated = user.clone();
    updated.apply(&decided.expect("decided")[0]);
    // The same locale again is no change.
    assert_eq!(
        domain::user::update_profile(
            &updated,
            ProfileChanges {
                locale: Some(Locale::parse("de").expect("a locale")),
                ..Default::default()
            },
            &context(Actor::PlatformAdmin { user_id: operator }),
        ),
        Ok(vec![])
    );
    assert_eq!(
        domain::user::grant_platform_admin(&user),
        Ok(vec![UserEvent::PlatformAdminGranted { user_id: ADMIN }])
    );
    let mut granted = user;
    granted.apply(&UserEvent::PlatformAdminGranted { user_id: ADMIN });
    assert_eq!(domain::user::grant_platform_admin(&granted), Ok(vec![]));
}
