//! Given/when/then for an account's end (scheduled deletion, restore, purge, self-service)
//! and a property: whatever happens, a locked-out account never logs in.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::event::{TenantEvent, UserEvent};
use domain::user::{LoginOutcome, NewSession};
use domain::{Actor, Context, DomainError, Plan, Role, Tenant, TenantMembers, User, UserStatus};
use proptest::prelude::*;
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const ADMIN: Uuid = Uuid::from_u128(0xad);
const MEMBER: Uuid = Uuid::from_u128(0x3e);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .expect("a time")
}

fn at(now: DateTime<Utc>, user_id: Uuid, role: Role) -> Context {
    Context {
        now,
        actor: Actor::User {
            user_id,
            tenant_id: TENANT,
            role,
        },
    }
}

fn tenant(grace_days: Option<u32>) -> Tenant {
    let mut events = vec![TenantEvent::Created {
        tenant_id: TENANT,
        name: "Acme".into(),
        plan: Plan::Standard,
        admin_user_id: ADMIN,
    }];
    if let Some(days) = grace_days {
        events.push(TenantEvent::SettingsChanged {
            tenant_id: TENANT,
            name: None,
            signup_policy: None,
            allowed_domains: None,
            deletion_grace_days: Some(days),
            invitation_expiry_notices: None,
            require_verified_email: None,
            changed_by: ADMIN,
        });
    }
    Tenant::from_events(&events)
}

fn member(user_id: Uuid, role: Role) -> User {
    User::from_events(&[
        UserEvent::Created {
            user_id,
            tenant_id: TENANT,
            email: "m@example.com".into(),
            display_name: "M".into(),
            password_hash: "hash".into(),
            email_verification: None,
            source: None,
        },
        UserEvent::MemberJoined {
            tenant_id: TENANT,
            user_id,
            role,
        },
    ])
}

fn members() -> TenantMembers {
    let mut members = TenantMembers::new(TENANT);
    for (user_id, role) in [(ADMIN, Role::Admin), (MEMBER, Role::Member)] {
        members.apply(
            user_id,
            &UserEvent::MemberJoined {
                tenant_id: TENANT,
                user_id,
                role,
            },
        );
    }
    members
}

fn logs_in(user: &User, now: DateTime<Utc>) -> bool {
    let session = NewSession {
        session_id: Uuid::from_u128(0x5e),
        refresh_token_hash: "r".into(),
        expires_at: now + Duration::days(1),
        user_agent: None,
    };
    let context = Context {
        now,
        actor: Actor::Anonymous,
    };
    matches!(
        domain::user::log_in(user, true, session, &context),
        Ok(LoginOutcome::Succeeded(_))
    )
}

#[test]
fn a_scheduled_deletion_locks_out_until_restored_and_is_purged_after_the_grace_period() {
    let mut user = member(MEMBER, Role::Member);
    let scheduled = domain::lifecycle::schedule_deletion(
        &members(),
        &user,
        &tenant(Some(7)),
        &at(now(), ADMIN, Role::Admin),
    )
    .expect("scheduled");
    let [UserEvent::DeletionScheduled { purge_at, .. }] = scheduled.as_slice() else {
        panic!("{scheduled:?}");
    };
    assert_eq!(*purge_at, now() + Duration::days(7));
    scheduled.iter().for_each(|e| user.apply(e));
    assert!(!logs_in(&user, now()), "locked out at once");
    assert_eq!(
        domain::lifecycle::purge(&user, now() + Duration::days(6)),
        vec![]
    );
    let purged = domain::lifecycle::purge(&user, now() + Duration::days(7));
    assert!(matches!(
        purged.as_slice(),
        [UserEvent::MemberRemoved { .. }, UserEvent::Deleted { deleted_by, erasure: true, .. }] if *deleted_by == ADMIN
    ));
    assert_eq!(
        domain::lifecycle::schedule_deletion(
            &members(),
            &user,
            &tenant(None),
            &at(now(), ADMIN, Role::Admin)
        ),
        Err(DomainError::DeletionAlreadyScheduled)
    );
    let restored =
        domain::lifecycle::cancel_deletion(&members(), &user, &at(now(), ADMIN, Role::Admin))
            .expect("restored");
    restored.iter().for_each(|e| user.apply(e));
    assert!(logs_in(&user, now()), "restored, the user logs in again");
    assert_eq!(
        domain::lifecycle::purge(&user, now() + Duration::days(30)),
        vec![],
        "nothing left to purge"
    );
    assert_eq!(
        domain::lifecycle::cancel_deletion(&members(), &user, &at(now(), ADMIN, Role::Admin)),
        Err(DomainError::DeletionNotScheduled)
    );
}

#[test]
fn only_admins_delete_others_and_the_last_active_admin_stays() {
    let members = members();
    let user = member(MEMBER, Role::Member);
    assert_eq!(
        domain::lifecycle::schedule_deletion(
            &members,
            &user,
            &tenant(None),
            &at(now(), MEMBER, Role::Member)
        ),
        Err(DomainError::NotAllowed)
    );
    let admin = member(ADMIN, Role::Admin);
    assert_eq!(
        domain::lifecycle::schedule_deletion(
            &members,
            &admin,
            &tenant(None),
            &at(now(), ADMIN, Role::Admin)
        ),
        Err(DomainError::LastActiveAdmin)
    );
    assert_eq!(
        domain::lifecycle::delete_self(
            &members,
            &admin,
            &tenant(None),
            true,
            &at(now(), ADMIN, Role::Admin)
        ),
        Err(DomainError::LastActiveAdmin)
    );
    assert_eq!(
        domain::lifecycle::deactivate_self(&members, &admin, true, &at(now(), ADMIN, Role::Admin)),
        Err(DomainError::LastActiveAdmin)
    );
}

#[test]
fn self_service_needs_the_password_and_the_account_itself() {
    let members = members();
    let user = member(MEMBER, Role::Member);
    let me = at(now(), MEMBER, Role::Member);
    assert_eq!(
        domain::lifecycle::delete_self(&members, &user, &tenant(None), false, &me),
        Err(DomainError::WrongPassword)
    );
    assert_eq!(
        domain::lifecycle::deactivate_self(&members, &user, false, &me),
        Err(DomainError::WrongPassword)
    );
    assert_eq!(
        domain::lifecycle::delete_self(
            &members,
            &user,
            &tenant(None),
            true,
            &at(now(), ADMIN, Role::Admin)
        ),
        Err(DomainError::NotAllowed),
        "nobody deletes another's account as their own"
    );
    let deleted = domain::lifecycle::delete_self(&members, &user, &tenant(Some(0)), true, &me)
        .expect("deleted");
    assert!(
        matches!(
            deleted.as_slice(),
            [UserEvent::DeletionScheduled { by_self: true, purge_at, .. }] if *purge_at == now()
        ),
        "grace 0: purged at once"
    );
    let deactivated =
        domain::lifecycle::deactivate_self(&members, &user, true, &me).expect("deactivated");
    assert_eq!(
        deactivated,
        vec![UserEvent::Deactivated {
            user_id: MEMBER,
            deactivated_by: MEMBER,
            by_admin: false
        }]
    );
}

#[derive(Debug, Clone)]
enum Step {
    Schedule,
    Restore,
    Deactivate,
    Reactivate,
    Purge(i64),
    Remove,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Schedule),
        Just(Step::Restore),
        Just(Step::Deactivate),
        Just(Step::Reactivate),
        (0..40i64).prop_map(Step::Purge),
        Just(Step::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Whatever an admin and the system do, an account that is scheduled for deletion,
    /// deactivated, removed or deleted never logs in; one that is none of these does.
    #[test]
    fn no_sequence_logs_in_a_locked_deactivated_scheduled_or_deleted_account(
        steps in proptest::collection::vec(step(), 1..30)
    ) {
        let mut members = members();
        let mut user = member(MEMBER, Role::Member);
        let admin = at(now(), ADMIN, Role::Admin);
        for (i, step) in steps.into_iter().enumerate() {
            let when = now() + Duration::days(i as i64);
            let events = match step {
                Step::Schedule => domain::lifecycle::schedule_deletion(&members, &user, &tenant(Some(3)), &Context { now: when, ..admin.clone() }).unwrap_or_default(),
                Step::Restore => domain::lifecycle::cancel_deletion(&members, &user, &admin).unwrap_or_default(),
                Step::Deactivate => domain::user::deactivate(&members, &user, &admin).unwrap_or_default(),
                Step::Reactivate => domain::user::reactivate(&members, &user, &admin).unwrap_or_default(),
                Step::Purge(days) => domain::lifecycle::purge(&user, when + Duration::days(days)),
                Step::Remove => domain::lifecycle::remove_member(&members, &user, &admin).unwrap_or_default(),
            };
            for event in &events {
                user.apply(event);
                members.apply(MEMBER, event);
            }
            let locked = user.erased
                || user.purge_at.is_some()
                || user.status != Some(UserStatus::Active)
                || !user.is_member();
            prop_assert_eq!(logs_in(&user, when), !locked, "{:?}", user);
        }
    }
}

fn policy() -> domain::lockout::LockoutPolicy {
    domain::lockout::LockoutPolicy {
        threshold: 3,
        window: Duration::minutes(15),
        first_lock: Duration::minutes(1),
        longest_lock: Duration::minutes(3),
    }
}

fn attempt(user: &mut User, verified: bool, now: DateTime<Utc>) -> LoginOutcome {
    let session = NewSession {
        session_id: Uuid::from_u128(0x5f),
        refresh_token_hash: "r".into(),
        expires_at: now + Duration::days(1),
        user_agent: None,
    };
    let context = Context {
        now,
        actor: Actor::Anonymous,
    };
    let outcome =
        domain::lockout::log_in(user, verified, session, &policy(), &context).expect("decided");
    if let LoginOutcome::Failed(events, _) = &outcome {
        events.iter().for_each(|event| user.apply_at(event, now));
    }
    outcome
}

#[test]
fn wrong_passwords_lock_the_account_for_a_growing_time_and_attempts_while_locked_record_nothing() {
    let mut user = member(MEMBER, Role::Member);
    let t = now();
    for i in 0..2 {
        assert!(
            matches!(attempt(&mut user, false, t + Duration::seconds(i)), LoginOutcome::Failed(events, _) if events.len() == 1)
        );
    }
    let LoginOutcome::Failed(events, _) = attempt(&mut user, false, t + Duration::seconds(2))
    else {
        panic!("refused");
    };
    assert!(
        matches!(events.as_slice(), [UserEvent::LoginFailed { .. }, UserEvent::Locked { failures: 3, until, .. }] if *until == t + Duration::seconds(2) + Duration::minutes(1))
    );
    // Locked: even the right password is refused, and nothing is recorded.
    assert!(
        matches!(attempt(&mut user, true, t + Duration::seconds(30)), LoginOutcome::Failed(events, _) if events.is_empty())
    );
    assert!(
        matches!(attempt(&mut user, false, t + Duration::seconds(31)), LoginOutcome::Failed(events, _) if events.is_empty())
    );
    let later = t + Duration::minutes(2);
    let unlocked = domain::lockout::unlock_due(&user, later);
    assert_eq!(
        unlocked,
        vec![UserEvent::Unlocked {
            user_id: MEMBER,
            unlocked_by: None
        }]
    );
    unlocked.iter().for_each(|e| user.apply(e));
    assert!(matches!(
        attempt(&mut user, true, later),
        LoginOutcome::Succeeded(_)
    ));
    // The second lock lasts twice as long, the third no longer than the longest.
    for i in 0..3 {
        attempt(&mut user, false, later + Duration::seconds(i));
    }
    assert_eq!(
        user.locked_until,
        Some(later + Duration::seconds(2) + Duration::minutes(2))
    );
    assert_eq!(policy().lock_for(5), Duration::minutes(3));
    // Old failures outside the window do not count.
    let mut fresh = member(MEMBER, Role::Member);
    attempt(&mut fresh, false, t);
    attempt(&mut fresh, false, t + Duration::seconds(1));
    assert!(
        matches!(attempt(&mut fresh, false, t + Duration::minutes(20)), LoginOutcome::Failed(events, _) if events.len() == 1)
    );
}

#[test]
fn an_admin_reactivating_a_locked_account_unlocks_it() {
    let mut user = member(MEMBER, Role::Member);
    for i in 0..3 {
        attempt(&mut user, false, now() + Duration::seconds(i));
    }
    assert!(user.locked_until.is_some());
    let events = domain::user::reactivate(&members(), &user, &at(now(), ADMIN, Role::Admin))
        .expect("reactivated");
    assert_eq!(
        events,
        vec![UserEvent::Unlocked {
            user_id: MEMBER,
            unlocked_by: Some(ADMIN)
        }]
    );
}
