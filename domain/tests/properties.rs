//! Properties that hold for any sequence of commands.

use chrono::{TimeZone, Utc};
use domain::event::UserEvent;
use domain::user::ProfileChanges;
use domain::values::DisplayName;
use domain::{Actor, Context, Role, TenantMembers, User, UserStatus};
use proptest::prelude::*;
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const PEOPLE: usize = 4;

#[derive(Debug, Clone)]
enum Command {
    ChangeRole {
        actor: usize,
        target: usize,
        admin: bool,
    },
    SetStatus {
        actor: usize,
        target: usize,
        active: bool,
    },
    Erase {
        actor: usize,
        target: usize,
    },
    UpdateProfile {
        actor: usize,
        name: String,
    },
}

fn command() -> impl Strategy<Value = Command> {
    let person = 0..PEOPLE;
    prop_oneof![
        (person.clone(), 0..PEOPLE, any::<bool>()).prop_map(|(actor, target, admin)| {
            Command::ChangeRole {
                actor,
                target,
                admin,
            }
        }),
        (person.clone(), 0..PEOPLE, any::<bool>()).prop_map(|(actor, target, active)| {
            Command::SetStatus {
                actor,
                target,
                active,
            }
        }),
        (person.clone(), 0..PEOPLE).prop_map(|(actor, target)| Command::Erase { actor, target }),
        (person, "[A-Za-z ]{1,20}")
            .prop_map(|(actor, name)| Command::UpdateProfile { actor, name }),
    ]
}

fn id(index: usize) -> Uuid {
    Uuid::from_u128(index as u128 + 1)
}

/// A tenant whose first person is its admin and the others members.
fn start() -> (Vec<User>, TenantMembers, Vec<(usize, UserEvent)>) {
    let mut users = vec![User::default(); PEOPLE];
    let mut members = TenantMembers::new(TENANT);
    let mut history = Vec::new();
    for (index, user) in users.iter_mut().enumerate() {
        let events = [
            UserEvent::Created {
                user_id: id(index),
                tenant_id: TENANT,
                email: format!("p{index}@example.com"),
                display_name: format!("P{index}"),
                password_hash: "hash".into(),
                email_verification: None,
                source: None,
            },
            UserEvent::MemberJoined {
                tenant_id: TENANT,
                user_id: id(index),
                role: if index == 0 {
                    Role::Admin
                } else {
                    Role::Member
                },
            },
        ];
        for event in events {
            user.apply(&event);
            members.apply(id(index), &event);
            history.push((index, event));
        }
    }
    (users, members, history)
}

fn context(users: &[User], actor: usize) -> Context {
    Context {
        now: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("time"),
        actor: Actor::User {
            user_id: id(actor),
            tenant_id: TENANT,
            role: users[actor].role.unwrap_or(Role::Member),
        },
    }
}

proptest! {
    #[test]
    fn folding_the_emitted_events_gives_the_state_the_decisions_saw_and_an_admin_always_remains(
        commands in proptest::collection::vec(command(), 0..40)
    ) {
        let (mut users, mut members, mut history) = start();
        for command in commands {
            let (target, decided) = match command {
                Command::ChangeRole { actor, target, admin } => {
                    let role = if admin { Role::Admin } else { Role::Member };
                    (target, domain::user::change_role(&members, &users[target], role, &context(&users, actor)))
                }
                Command::SetStatus { actor, target, active } => {
                    let ctx = context(&users, actor);
                    let decided = if active {
                        domain::user::reactivate(&members, &users[target], &ctx)
                    } else {
                        domain::user::deactivate(&members, &users[target], &ctx)
                    };
                    (target, decided)
                }
                Command::Erase { actor, target } => {
                    (target, domain::user::erase(&members, &users[target], &context(&users, actor)))
                }
                Command::UpdateProfile { actor, name } => {
                    // Parsed at the edge as the API does: a refused name never reaches the decision.
                    let decided = DisplayName::parse(&name).and_then(|name| {
                        let changes = ProfileChanges { display_name: Some(name), ..Default::default() };
                        domain::user::update_profile(&users[actor], changes, &context(&users, actor))
                    });
                    (actor, decided)
                }
            };
            if let Ok(events) = decided {
                prop_assert!(events.is_empty() || users[target].is_present(), "an erased user never changes again");
                for event in events {
                    users[target].apply(&event);
                    members.apply(id(target), &event);
                    history.push((target, event));
                }
            }
            prop_assert!(members.active_admins() >= 1, "the tenant lost its last active admin");
        }

        // Replaying the whole history from nothing gives the same state.
        let mut replayed_users = vec![User::default(); PEOPLE];
        let mut replayed_members = TenantMembers::new(TENANT);
        for (index, event) in &history {
            replayed_users[*index].apply(event);
            replayed_members.apply(id(*index), event);
        }
        prop_assert_eq!(&replayed_users, &users);
        prop_assert_eq!(&replayed_members, &members);

        // The membership view agrees with each user's own state.
        for (index, user) in users.iter().enumerate() {
            match members.members.get(&id(index)) {
                Some(member) => {
                    prop_assert!(user.is_present());
                    prop_assert_eq!(Some(member.role), user.role);
                    prop_assert_eq!(Some(member.status), user.status);
                }
                None => prop_assert!(user.erased),
            }
        }
        let _ = UserStatus::Active;
    }

    #[test]
    fn email_validation_never_panics_on_arbitrary_text(input in "\\PC{0,300}") {
        if let Ok(email) = domain::values::Email::parse(&input) {
            prop_assert!(email.as_str().contains('@'));
            prop_assert!(email.as_str().len() <= domain::values::Email::MAX_BYTES);
            prop_assert_eq!(email.as_str(), input.trim());
        }
    }

    #[test]
    fn valid_addresses_are_accepted_and_normalised_to_one_lower_case_form(
        (address, local, domain) in valid_email(),
        flips in proptest::collection::vec(any::<bool>(), 0..80),
        padding in "[ \t]{0,3}",
    ) {
        let email = domain::values::Email::parse(&address);
        prop_assert!(email.is_ok(), "{address} was refused");
        let normalised = domain::values::normalise_email(&address);
        prop_assert_eq!(email.map(|email| email.normalised()).ok(), Some(normalised.clone()));
        prop_assert_eq!(&normalised, &format!("{}@{}", local.to_lowercase(), domain.to_lowercase()));
        prop_assert!(domain::values::Email::parse(&normalised).is_ok());
        prop_assert_eq!(domain::values::normalise_email(&normalised), normalised.clone(), "normalising twice changes nothing");
        // Any mix of cases and surrounding blanks names the same address.
        let recased: String = address
            .chars()
            .zip(flips.iter().chain(std::iter::repeat(&false)))
            .map(|(c, upper)| if *upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        let padded = format!("{padding}{recased}{padding}");
        prop_assert_eq!(domain::values::normalise_email(&padded), normalised);
    }

    #[test]
    fn near_valid_addresses_are_refused((address, defect) in near_valid_email()) {
        prop_assert!(
            domain::values::Email::parse(&address).is_err(),
            "{address:?} ({defect}) was accepted"
        );
    }
}

/// A local part of letters, digits and `._+-`, up to 64 bytes.
fn local_part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._+-]{0,40}"
}

/// A domain label: letters and digits, inner hyphens, at most 63 characters.
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{1,20}",
        "[A-Za-z0-9][A-Za-z0-9-]{0,20}[A-Za-z0-9]"
    ]
}

/// A domain of two to four labels.
fn domain_name() -> impl Strategy<Value = String> {
    proptest::collection::vec(label(), 2..=4).prop_map(|labels| labels.join("."))
}

/// `(address, local part, domain)` of an address the rules accept.
fn valid_email() -> impl Strategy<Value = (String, String, String)> {
    (local_part(), domain_name())
        .prop_map(|(local, domain)| (format!("{local}@{domain}"), local, domain))
}

/// A valid address with one defect, and the defect's name.
fn near_valid_email() -> impl Strategy<Value = (String, &'static str)> {
    (
        local_part(),
        domain_name(),
        0..10usize,
        "[A-Za-z0-9]{65,70}",
        0..3usize,
    )
        .prop_map(|(local, domain, defect, long, at)| {
            let (first_label, rest) = domain.split_once('.').unwrap_or((&domain, "example"));
            match defect {
                0 => (format!("{local}{domain}"), "no @"),
                1 => (format!("@{domain}"), "empty local part"),
                2 => (format!("{local}@"), "empty domain"),
                3 => (format!("{local}@{first_label}"), "a single label"),
                4 => (format!("{local}@{first_label}..{rest}"), "an empty label"),
                5 => (
                    format!("{local}@-{domain}"),
                    "a label starting with a hyphen",
                ),
                6 => (
                    format!("{local}@{first_label}-.{rest}"),
                    "a label ending with a hyphen",
                ),
                7 => {
                    let inner = [" ", "\t", "\n"][at];
                    (
                        format!("{local}{inner}x@{domain}"),
                        "a blank or control character",
                    )
                }
                8 => (format!("{long}@{domain}"), "a local part over 64 bytes"),
                _ => (
                    format!("{local}@{first_label}{}.{rest}", ["_", "!", "/"][at]),
                    "a character not allowed in a domain",
                ),
            }
        })
}
