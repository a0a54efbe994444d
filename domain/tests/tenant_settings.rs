//! Given/when/then for a tenant's settings and the signup policy they set.

use chrono::{TimeZone, Utc};
use domain::event::{TenantEvent, UserEvent};
use domain::tenant::{MAX_DELETION_GRACE_DAYS, SettingsChanges};
use domain::user::SignUpUser;
use domain::values::{DisplayName, Email, MailDomain, TenantName};
use domain::{Actor, Context, DomainError, Plan, Role, SignupPolicy, Tenant, TenantMembers, User};
use proptest::prelude::*;
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const ADMIN: Uuid = Uuid::from_u128(0xad);
const MEMBER: Uuid = Uuid::from_u128(0x3e);

fn context(user_id: Uuid, role: Role) -> Context {
    Context {
        now: Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .expect("a time"),
        actor: Actor::User {
            user_id,
            tenant_id: TENANT,
            role,
        },
    }
}

fn given_a_tenant(settings: &[TenantEvent]) -> (Tenant, TenantMembers) {
    let mut tenant = Tenant::from_events(&[TenantEvent::Created {
        tenant_id: TENANT,
        name: "Acme".into(),
        plan: Plan::Standard,
        admin_user_id: ADMIN,
    }]);
    settings.iter().for_each(|event| tenant.apply(event));
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
    (tenant, members)
}

fn domains(list: &[&str]) -> Option<Vec<MailDomain>> {
    Some(
        list.iter()
            .map(|d| MailDomain::parse(d).expect("a domain"))
            .collect(),
    )
}

fn policy(policy: SignupPolicy, allowed: &[&str]) -> TenantEvent {
    TenantEvent::SettingsChanged {
        tenant_id: TENANT,
        name: None,
        signup_policy: Some(policy),
        allowed_domains: Some(allowed.iter().map(|d| (*d).to_owned()).collect()),
        deletion_grace_days: None,
        invitation_expiry_notices: None,
        require_verified_email: None,
        changed_by: ADMIN,
    }
}

fn sign_up(tenant: &Tenant, address: &str) -> Result<Vec<UserEvent>, DomainError> {
    domain::user::sign_up(
        tenant,
        &User::default(),
        SignUpUser {
            user_id: Uuid::from_u128(0x99),
            tenant_id: TENANT,
            email: Email::parse(address).expect("an address"),
            display_name: DisplayName::parse("New").expect("a name"),
            password_hash: "hash".into(),
        },
        &Context {
            actor: Actor::Anonymous,
            ..context(ADMIN, Role::Admin)
        },
    )
}

#[test]
fn an_admin_changes_only_what_differs_and_the_domains_are_normalised() {
    let (tenant, members) = given_a_tenant(&[]);
    assert_eq!(tenant.signup_policy, SignupPolicy::Open, "open by default");
    assert_eq!(tenant.deletion_grace_days(), 30, "30 days by default");
    let events = domain::tenant::change_settings(
        &tenant,
        &members,
        SettingsChanges {
            name: Some(TenantName::parse("Acme").expect("a name")),
            signup_policy: Some(SignupPolicy::EmailDomain),
            allowed_domains: domains(&["Beta.example", " acme.EXAMPLE ", "beta.example"]),
            deletion_grace_days: Some(30),
            invitation_expiry_notices: Some(true),
            require_verified_email: None,
        },
        &context(ADMIN, Role::Admin),
    )
    .expect("accepted");
    assert_eq!(
        events,
        [TenantEvent::SettingsChanged {
            tenant_id: TENANT,
            name: None,
            signup_policy: Some(SignupPolicy::EmailDomain),
            allowed_domains: Some(vec!["acme.example".into(), "beta.example".into()]),
            deletion_grace_days: None,
            invitation_expiry_notices: None,
            require_verified_email: None,
            changed_by: ADMIN,
        }],
        "the unchanged name and grace period are not recorded"
    );
    let mut changed = tenant.clone();
    changed.apply(&events[0]);
    let again = domain::tenant::change_settings(
        &changed,
        &members,
        SettingsChanges {
            signup_policy: Some(SignupPolicy::EmailDomain),
            allowed_domains: domains(&["beta.example", "acme.example"]),
            ..Default::default()
        },
        &context(ADMIN, Role::Admin),
    );
    assert_eq!(again, Ok(Vec::new()), "a change that changes nothing");
}

#[test]
fn only_an_admin_changes_settings_and_the_rules_hold() {
    let (tenant, members) = given_a_tenant(&[]);
    let change = |changes: SettingsChanges, who: &Context| {
        domain::tenant::change_settings(&tenant, &members, changes, who)
    };
    let invitation_only = SettingsChanges {
        signup_policy: Some(SignupPolicy::InvitationOnly),
        ..Default::default()
    };
    assert_eq!(
        change(invitation_only.clone(), &context(MEMBER, Role::Member)),
        Err(DomainError::NotAllowed)
    );
    assert_eq!(
        change(invitation_only, &context(MEMBER, Role::Admin)),
        Err(DomainError::NotAllowed),
        "a token's role is not enough: the membership view decides"
    );
    let no_domains = SettingsChanges {
        signup_policy: Some(SignupPolicy::EmailDomain),
        ..Default::default()
    };
    assert!(matches!(
        change(no_domains, &context(ADMIN, Role::Admin)),
        Err(DomainError::Invalid(_))
    ));
    let too_long = SettingsChanges {
        deletion_grace_days: Some(MAX_DELETION_GRACE_DAYS + 1),
        ..Default::default()
    };
    assert!(matches!(
        change(too_long, &context(ADMIN, Role::Admin)),
        Err(DomainError::Invalid(_))
    ));
    let zero = SettingsChanges {
        deletion_grace_days: Some(0),
        ..Default::default()
    };
    assert!(
        change(zero, &context(ADMIN, Role::Admin)).is_ok_and(|events| events.len() == 1),
        "0 days: purge at once"
    );
    assert!(MailDomain::parse("not a domain").is_err());
    assert!(MailDomain::parse("localhost").is_err());
}

#[test]
fn the_signup_policy_decides_who_may_sign_up_by_themselves() {
    let (open, _) = given_a_tenant(&[]);
    assert!(sign_up(&open, "anyone@anywhere.example").is_ok());
    let (closed, _) = given_a_tenant(&[policy(SignupPolicy::InvitationOnly, &[])]);
    assert!(matches!(
        sign_up(&closed, "anyone@anywhere.example"),
        Err(DomainError::SignupRefused(_))
    ));
    let (domain_only, _) = given_a_tenant(&[policy(SignupPolicy::EmailDomain, &["acme.example"])]);
    assert!(
        sign_up(&domain_only, "ada@ACME.Example").is_ok(),
        "any case"
    );
    assert!(matches!(
        sign_up(&domain_only, "ada@evil.example"),
        Err(DomainError::SignupRefused(_))
    ));
    assert!(
        matches!(
            sign_up(&domain_only, "ada@acme.example.evil.example"),
            Err(DomainError::SignupRefused(_))
        ),
        "the whole domain, not a prefix"
    );
    assert!(
        matches!(
            sign_up(&domain_only, "ada@sub.acme.example"),
            Err(DomainError::SignupRefused(_))
        ),
        "not a subdomain either"
    );
}

proptest! {
    /// Whatever settings an admin sends, the tenant folded from the events is what the
    /// decisions said, and an `email_domain` policy never stands without a domain.
    #[test]
    fn settings_folded_from_their_events_never_leave_email_domain_without_a_domain(
        steps in proptest::collection::vec(
            (0..4u8, proptest::collection::vec("[a-c]{1,3}\\.example", 0..3), proptest::option::of(0..40u32)),
            1..12,
        )
    ) {
        let (mut tenant, members) = given_a_tenant(&[]);
        for (policy, allowed, days) in steps {
            let signup_policy = match policy {
                0 => None,
                1 => Some(SignupPolicy::Open),
                2 => Some(SignupPolicy::InvitationOnly),
                _ => Some(SignupPolicy::EmailDomain),
            };
            let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
            let changes = SettingsChanges {
                signup_policy,
                allowed_domains: domains(&allowed),
                deletion_grace_days: days,
                ..Default::default()
            };
            if let Ok(events) = domain::tenant::change_settings(&tenant, &members, changes, &context(ADMIN, Role::Admin)) {
                for event in &events {
                    tenant.apply(event);
                }
            }
            prop_assert!(tenant.signup_policy != SignupPolicy::EmailDomain || !tenant.allowed_domains.is_empty());
            prop_assert!(tenant.allowed_domains.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        }
    }
}
