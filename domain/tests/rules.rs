//! The domain's rules as given/when/then scenarios: given these past events, when this
//! command is decided, then these events (or this refusal).

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::event::{
    LoginFailure, ProfileField, RemovalReason, RevocationReason, SessionEvent, TenantEvent,
    UserEvent,
};
use domain::session::{Refresh, RefreshOutcome};
use domain::tenant::SignUpTenant;
use domain::user::{LoginOutcome, NewSession, ProfileChanges, SignUpUser};
use domain::values::{DisplayName, Email, Locale, Phone, TenantName};
use domain::{Actor, Context, DomainError, Plan, Role, Session, Tenant, TenantMembers, User};
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const ADMIN: Uuid = Uuid::from_u128(0xad);
const MEMBER: Uuid = Uuid::from_u128(0x3e);
const SESSION: Uuid = Uuid::from_u128(0x5e);

fn email(input: &str) -> Email {
    Email::parse(input).expect("an address")
}

fn name(input: &str) -> DisplayName {
    DisplayName::parse(input).expect("a name")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 22, 10, 0, 0)
        .single()
        .expect("a valid time")
}

fn as_admin() -> Context {
    Context {
        now: now(),
        actor: Actor::User {
            user_id: ADMIN,
            tenant_id: TENANT,
            role: Role::Admin,
        },
    }
}

fn as_member() -> Context {
    Context {
        now: now(),
        actor: Actor::User {
            user_id: MEMBER,
            tenant_id: TENANT,
            role: Role::Member,
        },
    }
}

fn anonymous() -> Context {
    Context {
        now: now(),
        actor: Actor::Anonymous,
    }
}

fn created(user_id: Uuid) -> UserEvent {
    UserEvent::Created {
        user_id,
        tenant_id: TENANT,
        email: format!("{user_id}@example.com"),
        display_name: "Someone".into(),
        password_hash: "$argon2id$hash".into(),
        email_verification: None,
        source: None,
    }
}

fn joined(user_id: Uuid, role: Role) -> UserEvent {
    UserEvent::MemberJoined {
        tenant_id: TENANT,
        user_id,
        role,
    }
}

/// The past: events of several user streams, folded into users and the membership view.
struct Given {
    users: Vec<(Uuid, User)>,
    members: TenantMembers,
}

fn given(history: &[(Uuid, UserEvent)]) -> Given {
    let mut members = TenantMembers::new(TENANT);
    let mut users: Vec<(Uuid, User)> = Vec::new();
    for (user_id, event) in history {
        members.apply(*user_id, event);
        match users.iter_mut().find(|(id, _)| id == user_id) {
            Some((_, user)) => user.apply_at(event, now() - Duration::hours(1)),
            None => {
                let mut user = User::default();
                user.apply_at(event, now() - Duration::hours(1));
                users.push((*user_id, user));
            }
        }
    }
    Given { users, members }
}

fn a_tenant_with_an_admin_and_a_member() -> Given {
    given(&[
        (ADMIN, created(ADMIN)),
        (ADMIN, joined(ADMIN, Role::Admin)),
        (MEMBER, created(MEMBER)),
        (MEMBER, joined(MEMBER, Role::Member)),
    ])
}

impl Given {
    fn user(&self, user_id: Uuid) -> User {
        self.users
            .iter()
            .find(|(id, _)| *id == user_id)
            .map(|(_, user)| user.clone())
            .unwrap_or_default()
    }
}

#[test]
fn tenant_signup_creates_the_tenant_its_admin_and_the_admins_membership() {
    let (tenant_events, user_events) = domain::tenant::sign_up_tenant(
        &Tenant::default(),
        SignUpTenant {
            tenant_id: TENANT,
            name: TenantName::parse("  Acme  ").expect("a name"),
            plan: Plan::Premium,
            admin_user_id: ADMIN,
            admin_email: email("ada@example.com"),
            admin_display_name: name("Ada"),
            admin_password_hash: "hash".into(),
        },
        &anonymous(),
    )
    .expect("accepted");
    assert_eq!(
        tenant_events,
        [TenantEvent::Created {
            tenant_id: TENANT,
            name: "Acme".into(),
            plan: Plan::Premium,
            admin_user_id: ADMIN
        }]
    );
    assert_eq!(user_events[1], joined(ADMIN, Role::Admin));
}

#[test]
fn a_tenant_cannot_be_created_twice() {
    let existing = Tenant::from_events(&[TenantEvent::Created {
        tenant_id: TENANT,
        name: "Acme".into(),
        plan: Plan::Standard,
        admin_user_id: ADMIN,
    }]);
    let result = domain::tenant::sign_up_tenant(
        &existing,
        SignUpTenant {
            tenant_id: TENANT,
            name: TenantName::parse("Acme").expect("a name"),
            plan: Plan::Standard,
            admin_user_id: MEMBER,
            admin_email: email("x@example.com"),
            admin_display_name: name("X"),
            admin_password_hash: "hash".into(),
        },
        &anonymous(),
    );
    assert_eq!(result, Err(DomainError::TenantAlreadyExists));
}

#[test]
fn a_user_signs_up_as_a_member_of_an_existing_tenant_only() {
    let command = SignUpUser {
        user_id: MEMBER,
        tenant_id: TENANT,
        email: email(" Grace@Example.com "),
        display_name: name("Grace"),
        password_hash: "hash".into(),
    };
    assert_eq!(
        domain::user::sign_up(
            &Tenant::default(),
            &User::default(),
            command.clone(),
            &anonymous()
        ),
        Err(DomainError::TenantNotFound)
    );
    let tenant = Tenant::from_events(&[TenantEvent::Created {
        tenant_id: TENANT,
        name: "Acme".into(),
        plan: Plan::Standard,
        admin_user_id: ADMIN,
    }]);
    let events =
        domain::user::sign_up(&tenant, &User::default(), command, &anonymous()).expect("accepted");
    assert!(matches!(&events[0], UserEvent::Created { email, .. } if email == "Grace@Example.com"));
    assert_eq!(events[1], joined(MEMBER, Role::Member));
}

#[test]
fn only_tenant_admins_manage_members() {
    let given = a_tenant_with_an_admin_and_a_member();
    let admin = given.user(ADMIN);
    assert_eq!(
        domain::user::change_role(&given.members, &admin, Role::Member, &as_member()),
        Err(DomainError::NotAllowed)
    );
    assert_eq!(
        domain::user::deactivate(&given.members, &admin, &as_member()),
        Err(DomainError::NotAllowed)
    );
    assert_eq!(
        domain::user::erase(&given.members, &admin, &as_member()),
        Err(DomainError::NotAllowed)
    );
    let outsider = Context {
        now: now(),
        actor: Actor::User {
            user_id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            role: Role::Admin,
        },
    };
    assert_eq!(
        domain::user::deactivate(&given.members, &given.user(MEMBER), &outsider),
        Err(DomainError::NotAllowed),
        "an admin of another tenant is nobody here"
    );
}

#[test]
fn an_admin_promotes_a_member() {
    let given = a_tenant_with_an_admin_and_a_member();
    let events = domain::user::change_role(
        &given.members,
        &given.user(MEMBER),
        Role::Admin,
        &as_admin(),
    );
    assert_eq!(
        events,
        Ok(vec![UserEvent::MemberRoleChanged {
            tenant_id: TENANT,
            user_id: MEMBER,
            old_role: Role::Member,
            new_role: Role::Admin,
            changed_by: ADMIN,
        }])
    );
}

#[test]
fn the_last_active_admin_cannot_be_demoted_deactivated_or_erased() {
    let given = a_tenant_with_an_admin_and_a_member();
    let admin = given.user(ADMIN);
    assert_eq!(
        domain::user::change_role(&given.members, &admin, Role::Member, &as_admin()),
        Err(DomainError::LastActiveAdmin)
    );
    assert_eq!(
        domain::user::deactivate(&given.members, &admin, &as_admin()),
        Err(DomainError::LastActiveAdmin)
    );
    assert_eq!(
        domain::user::erase(&given.members, &admin, &as_admin()),
        Err(DomainError::LastActiveAdmin)
    );
}

#[test]
fn a_deactivated_admin_does_not_count_as_an_active_admin() {
    let given = given(&[
        (ADMIN, created(ADMIN)),
        (ADMIN, joined(ADMIN, Role::Admin)),
        (MEMBER, created(MEMBER)),
        (MEMBER, joined(MEMBER, Role::Admin)),
        (
            MEMBER,
            UserEvent::Deactivated {
                user_id: MEMBER,
                deactivated_by: ADMIN,
                by_admin: true,
            },
        ),
    ]);
    assert_eq!(
        domain::user::change_role(
            &given.members,
            &given.user(ADMIN),
            Role::Member,
            &as_admin()
        ),
        Err(DomainError::LastActiveAdmin)
    );
}

#[test]
fn deactivation_is_recorded_once_and_reactivation_restores_the_member() {
    let given = a_tenant_with_an_admin_and_a_member();
    let member = given.user(MEMBER);
    let events = domain::user::deactivate(&given.members, &member, &as_admin()).expect("accepted");
    assert_eq!(
        events,
        [UserEvent::Deactivated {
            user_id: MEMBER,
            deactivated_by: ADMIN,
            by_admin: true
        }]
    );
    let mut deactivated = member.clone();
    deactivated.apply(&events[0]);
    assert_eq!(
        domain::user::deactivate(&given.members, &deactivated, &as_admin()),
        Ok(vec![])
    );
    assert_eq!(
        domain::user::reactivate(&given.members, &deactivated, &as_admin()),
        Ok(vec![UserEvent::Reactivated {
            user_id: MEMBER,
            reactivated_by: ADMIN
        }])
    );
}

#[test]
fn a_deactivated_user_cannot_log_in_even_with_the_right_password() {
    let given = given(&[
        (MEMBER, created(MEMBER)),
        (MEMBER, joined(MEMBER, Role::Member)),
        (
            MEMBER,
            UserEvent::Deactivated {
                user_id: MEMBER,
                deactivated_by: ADMIN,
                by_admin: true,
            },
        ),
    ]);
    let outcome = domain::user::log_in(&given.user(MEMBER), true, new_session(), &anonymous())
        .expect("decided");
    assert_eq!(
        outcome,
        LoginOutcome::Failed(
            vec![UserEvent::LoginFailed {
                user_id: MEMBER,
                reason: LoginFailure::Deactivated
            }],
            LoginFailure::Deactivated
        )
    );
}

fn new_session() -> NewSession {
    NewSession {
        session_id: SESSION,
        refresh_token_hash: "h1".into(),
        expires_at: now() + Duration::days(30),
        user_agent: Some("curl/8".into()),
    }
}

#[test]
fn a_right_password_opens_a_session_and_a_wrong_one_is_recorded() {
    let given = a_tenant_with_an_admin_and_a_member();
    let member = given.user(MEMBER);
    assert!(matches!(
        domain::user::log_in(&member, true, new_session(), &anonymous()),
        Ok(LoginOutcome::Succeeded(events)) if matches!(events[..], [SessionEvent::LoggedIn { session_id: SESSION, .. }])
    ));
    assert!(matches!(
        domain::user::log_in(&member, false, new_session(), &anonymous()),
        Ok(LoginOutcome::Failed(_, LoginFailure::InvalidPassword))
    ));
}

#[test]
fn an_erased_user_is_gone() {
    let given = given(&[
        (MEMBER, created(MEMBER)),
        (MEMBER, joined(MEMBER, Role::Member)),
        (
            MEMBER,
            UserEvent::MemberRemoved {
                tenant_id: TENANT,
                user_id: MEMBER,
                removed_by: ADMIN,
                reason: RemovalReason::Removed,
            },
        ),
        (
            MEMBER,
            UserEvent::Deleted {
                user_id: MEMBER,
                deleted_by: ADMIN,
                erasure: true,
            },
        ),
    ]);
    let erased = given.user(MEMBER);
    assert!(
        erased.email.is_empty()
            && erased.display_name.is_empty()
            && erased.password_hash.is_empty()
    );
    assert_eq!(
        domain::user::log_in(&erased, true, new_session(), &anonymous()),
        Err(DomainError::UserNotFound)
    );
    assert_eq!(
        domain::user::update_profile(&erased, ProfileChanges::default(), &as_member()),
        Err(DomainError::UserNotFound)
    );
    assert_eq!(
        domain::user::erase(&given.members, &erased, &as_admin()),
        Err(DomainError::NotAllowed)
    );
}

#[test]
fn erasure_removes_the_membership_then_deletes_the_user() {
    let given = a_tenant_with_an_admin_and_a_member();
    assert_eq!(
        domain::user::erase(&given.members, &given.user(MEMBER), &as_admin()),
        Ok(vec![
            UserEvent::MemberRemoved {
                tenant_id: TENANT,
                user_id: MEMBER,
                removed_by: ADMIN,
                reason: RemovalReason::Removed,
            },
            UserEvent::Deleted {
                user_id: MEMBER,
                deleted_by: ADMIN,
                erasure: true
            },
        ])
    );
}

#[test]
fn a_profile_update_records_only_what_changed() {
    let given = a_tenant_with_an_admin_and_a_member();
    let member = given.user(MEMBER);
    let events = domain::user::update_profile(
        &member,
        ProfileChanges {
            display_name: Some(name("Someone")),
            phone: Some(Some(Phone::parse("+4915112345678").expect("a number"))),
            locale: None,
        },
        &as_member(),
    )
    .expect("accepted");
    assert_eq!(
        events,
        [UserEvent::ProfileUpdated {
            user_id: MEMBER,
            changed: vec![ProfileField::Phone],
            display_name: None,
            phone: Some(Some("+4915112345678".into())),
            locale: None,
            updated_by: MEMBER,
        }]
    );
    let mut updated = member;
    updated.apply(&events[0]);
    let clear = domain::user::update_profile(
        &updated,
        ProfileChanges {
            phone: Some(None),
            ..Default::default()
        },
        &as_member(),
    )
    .expect("accepted");
    assert!(
        matches!(&clear[..], [UserEvent::ProfileUpdated { changed, phone: Some(None), .. }] if changed == &[ProfileField::Phone])
    );
    assert!(
        matches!(
            DisplayName::parse(&"x".repeat(101)),
            Err(DomainError::Invalid(_))
        ),
        "a name over 100 characters never reaches the decision"
    );
    assert_eq!(
        domain::user::update_profile(
            &updated,
            ProfileChanges {
                locale: Some(Locale::parse("en").expect("a locale")),
                ..Default::default()
            },
            &as_admin()
        ),
        Err(DomainError::NotAllowed),
        "nobody else edits a user's own profile through this command"
    );
}

fn open_session() -> Session {
    let mut session = Session::default();
    session.apply(
        &SessionEvent::LoggedIn {
            session_id: SESSION,
            user_id: MEMBER,
            tenant_id: TENANT,
            refresh_token_hash: "h1".into(),
            expires_at: now() + Duration::days(30),
            user_agent: None,
        },
        now() - Duration::minutes(5),
    );
    session
}

fn refresh_with(hash: &str) -> Refresh {
    Refresh {
        presented_hash: hash.into(),
        new_hash: "h2".into(),
        new_expires_at: now() + Duration::days(30),
    }
}

#[test]
fn refreshing_rotates_the_token_and_replaying_an_old_token_revokes_the_session() {
    let member = a_tenant_with_an_admin_and_a_member().user(MEMBER);
    let session = open_session();
    let rotated = domain::session::refresh(&session, &member, refresh_with("h1"), &anonymous())
        .expect("decided");
    let RefreshOutcome::Rotated(events) = rotated else {
        panic!("expected a rotation")
    };
    let mut after = session.clone();
    after.apply(&events[0], now());
    assert_eq!(
        domain::session::refresh(&after, &member, refresh_with("h1"), &anonymous()),
        Ok(RefreshOutcome::Rejected(vec![SessionEvent::Revoked {
            session_id: SESSION,
            user_id: MEMBER,
            revoked_by: None,
            reason: RevocationReason::RefreshTokenReused,
        }]))
    );
    assert_eq!(
        domain::session::refresh(&after, &member, refresh_with("unknown"), &anonymous()),
        Ok(RefreshOutcome::Rejected(vec![]))
    );
}

#[test]
fn a_session_started_before_a_deactivation_never_refreshes_again() {
    let mut member = a_tenant_with_an_admin_and_a_member().user(MEMBER);
    member.apply_at(
        &UserEvent::Deactivated {
            user_id: MEMBER,
            deactivated_by: ADMIN,
            by_admin: true,
        },
        now(),
    );
    member.apply_at(
        &UserEvent::Reactivated {
            user_id: MEMBER,
            reactivated_by: ADMIN,
        },
        now(),
    );
    assert_eq!(
        domain::session::refresh(&open_session(), &member, refresh_with("h1"), &anonymous()),
        Ok(RefreshOutcome::Rejected(vec![]))
    );
}

#[test]
fn an_expired_session_does_not_refresh() {
    let member = a_tenant_with_an_admin_and_a_member().user(MEMBER);
    let later = Context {
        now: now() + Duration::days(31),
        actor: Actor::Anonymous,
    };
    assert_eq!(
        domain::session::refresh(&open_session(), &member, refresh_with("h1"), &later),
        Ok(RefreshOutcome::Rejected(vec![]))
    );
}

#[test]
fn a_session_is_revoked_by_its_owner_or_an_admin_of_its_tenant_only() {
    let session = open_session();
    assert!(matches!(
        domain::session::revoke(&session, &as_member()).as_deref(),
        Ok([SessionEvent::Revoked {
            reason: RevocationReason::Logout,
            ..
        }])
    ));
    assert!(matches!(
        domain::session::revoke(&session, &as_admin()).as_deref(),
        Ok([SessionEvent::Revoked {
            reason: RevocationReason::RevokedByAdmin,
            ..
        }])
    ));
    let stranger = Context {
        now: now(),
        actor: Actor::User {
            user_id: Uuid::from_u128(9),
            tenant_id: TENANT,
            role: Role::Member,
        },
    };
    assert_eq!(
        domain::session::revoke(&session, &stranger),
        Err(DomainError::SessionNotFound)
    );
    let other_admin = Context {
        now: now(),
        actor: Actor::User {
            user_id: Uuid::from_u128(9),
            tenant_id: Uuid::from_u128(8),
            role: Role::Admin,
        },
    };
    assert_eq!(
        domain::session::revoke(&session, &other_admin),
        Err(DomainError::SessionNotFound)
    );
}

fn as_platform_admin() -> Context {
    Context {
        now: now(),
        actor: Actor::PlatformAdmin {
            user_id: Uuid::from_u128(0x9a),
        },
    }
}

#[test]
fn a_platform_admin_manages_any_tenants_members_and_ends_any_session() {
    let given = a_tenant_with_an_admin_and_a_member();
    assert_eq!(
        domain::user::deactivate(&given.members, &given.user(MEMBER), &as_platform_admin()),
        Ok(vec![UserEvent::Deactivated {
            user_id: MEMBER,
            deactivated_by: Uuid::from_u128(0x9a),
            by_admin: true,
        }])
    );
    assert!(matches!(
        domain::session::revoke(&open_session(), &as_platform_admin()).as_deref(),
        Ok([SessionEvent::Revoked {
            reason: RevocationReason::RevokedByAdmin,
            revoked_by: Some(by),
            ..
        }]) if *by == Uuid::from_u128(0x9a)
    ));
}

#[test]
fn the_membership_view_counts_every_active_admin() {
    let second = Uuid::from_u128(0xa2);
    let mut given = a_tenant_with_an_admin_and_a_member();
    assert_eq!(given.members.active_admins(), 1);
    given.members.apply(second, &joined(second, Role::Admin));
    assert_eq!(given.members.active_admins(), 2);
    assert!(!given.members.is_last_active_admin(ADMIN));
    given.members.apply(
        MEMBER,
        &UserEvent::MemberRoleChanged {
            tenant_id: TENANT,
            user_id: MEMBER,
            old_role: Role::Member,
            new_role: Role::Admin,
            changed_by: ADMIN,
        },
    );
    assert_eq!(given.members.active_admins(), 3);
}

#[test]
fn each_stream_version_is_the_number_of_its_events() {
    let member = a_tenant_with_an_admin_and_a_member().user(MEMBER);
    assert_eq!(member.version, 2);
    let mut session = open_session();
    assert_eq!(session.version, 1);
    session.apply(
        &SessionEvent::Refreshed {
            session_id: SESSION,
            user_id: MEMBER,
            refresh_token_hash: "h2".into(),
            expires_at: now() + Duration::days(30),
        },
        now(),
    );
    assert_eq!(session.version, 2);
    let tenant = Tenant::from_events(&[
        TenantEvent::Created {
            tenant_id: TENANT,
            name: "Acme".into(),
            plan: Plan::Standard,
            admin_user_id: ADMIN,
        },
        TenantEvent::RateLimitChanged {
            tenant_id: TENANT,
            requests_per_hour: Some(5),
        },
    ]);
    assert_eq!(tenant.version, 2);
    assert_eq!(tenant.rate_limit_per_hour, Some(5));
}

#[test]
fn a_session_ends_at_its_expiry_instant() {
    let member = a_tenant_with_an_admin_and_a_member().user(MEMBER);
    let session = open_session();
    let expiry = session.expires_at.expect("an expiry");
    let at = |now| Context {
        now,
        actor: Actor::Anonymous,
    };
    assert!(session.is_open(expiry - Duration::microseconds(1)));
    assert!(!session.is_open(expiry), "expired at the instant itself");
    assert_eq!(
        domain::session::refresh(&session, &member, refresh_with("h1"), &at(expiry)),
        Ok(RefreshOutcome::Rejected(vec![]))
    );
}

#[test]
fn a_profile_update_means_the_same_to_every_fold() {
    use domain::event::{FieldChange, ProfileDelta};
    let both = UserEvent::profile_updated(MEMBER, Some("New".into()), Some(None), None, MEMBER)
        .expect("a change");
    assert_eq!(
        UserEvent::profile_updated(MEMBER, None, None, None, MEMBER),
        None,
        "no change, no event"
    );
    let delta = both.profile_delta().expect("a profile update");
    assert_eq!(
        delta,
        ProfileDelta {
            display_name: Some("New"),
            phone: FieldChange::Clear,
            locale: None
        }
    );
    let (mut name, mut phone, mut locale) = ("Old".to_owned(), Some("+1".to_owned()), None);
    delta.apply(&mut name, &mut phone, &mut locale);
    assert_eq!((name.as_str(), phone, locale), ("New", None, None));
    assert_eq!(both.changed_fields(), ["display_name", "phone"]);
    assert_eq!(created(MEMBER).profile_delta(), None);
    assert!(created(MEMBER).changed_fields().is_empty());
}

#[test]
fn an_admin_edits_a_members_profile_and_is_its_actor_but_a_member_may_not() {
    let given = a_tenant_with_an_admin_and_a_member();
    let member = given.user(MEMBER);
    let changes = ProfileChanges {
        display_name: Some(name("Renamed By Admin")),
        ..Default::default()
    };
    let events = domain::user::edit_profile(&given.members, &member, changes.clone(), &as_admin())
        .expect("accepted");
    assert!(matches!(
        &events[..],
        [UserEvent::ProfileUpdated { updated_by, display_name: Some(name), .. }]
            if *updated_by == ADMIN && name == "Renamed By Admin"
    ));
    assert_eq!(
        domain::user::edit_profile(&given.members, &given.user(ADMIN), changes, &as_member()),
        Err(DomainError::NotAllowed)
    );
}

#[test]
fn an_admin_removes_a_member_a_member_leaves_and_the_last_admin_stays() {
    let given = a_tenant_with_an_admin_and_a_member();
    let member = given.user(MEMBER);
    assert_eq!(
        domain::lifecycle::remove_member(&given.members, &member, &as_member()),
        Err(DomainError::NotAllowed),
        "a member removes nobody"
    );
    let removed =
        domain::lifecycle::remove_member(&given.members, &member, &as_admin()).expect("removed");
    assert_eq!(
        removed,
        [UserEvent::MemberRemoved {
            tenant_id: TENANT,
            user_id: MEMBER,
            removed_by: ADMIN,
            reason: RemovalReason::Removed,
        }]
    );
    let left = domain::lifecycle::leave(&given.members, &member, &as_member()).expect("left");
    assert!(matches!(
        &left[..],
        [UserEvent::MemberRemoved { removed_by, reason: RemovalReason::Left, .. }] if *removed_by == MEMBER
    ));
    assert_eq!(
        domain::lifecycle::leave(&given.members, &member, &as_admin()),
        Err(DomainError::NotAllowed),
        "nobody leaves for someone else"
    );
    let admin = given.user(ADMIN);
    assert_eq!(
        domain::lifecycle::leave(&given.members, &admin, &as_admin()),
        Err(DomainError::LastActiveAdmin)
    );
    assert_eq!(
        domain::lifecycle::remove_member(&given.members, &admin, &as_admin()),
        Err(DomainError::LastActiveAdmin)
    );
    // Once removed: no longer a member, not removable again, and a login opens nothing.
    let mut gone = member.clone();
    gone.apply(&removed[0]);
    assert!(!gone.is_member());
    let mut members = given.members.clone();
    members.apply(MEMBER, &removed[0]);
    assert_eq!(
        domain::lifecycle::remove_member(&members, &gone, &as_admin()),
        Err(DomainError::UserNotFound)
    );
    assert!(matches!(
        domain::user::log_in(&gone, true, new_session(), &anonymous()),
        Ok(LoginOutcome::Failed(events, LoginFailure::InvalidPassword)) if events.is_empty()
    ));
    assert!(
        matches!(
            domain::session::refresh(&open_session(), &gone, refresh_with("h1"), &as_member()),
            Ok(RefreshOutcome::Rejected(_))
        ),
        "a session of a removed member is never refreshed"
    );
    // Erasing them later deletes the account without removing them a second time.
    assert!(matches!(
        &domain::user::erase(&members, &gone, &as_admin()).expect("erased")[..],
        [UserEvent::Deleted { user_id, .. }] if *user_id == MEMBER
    ));
}
