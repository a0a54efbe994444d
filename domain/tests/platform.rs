//! A property over the whole platform: two tenants, people of both acting on each other,
//! every command the domain decides (signups, logins, refreshes, revocations, role and
//! status changes, erasure, profile updates, platform grants, rate limits). Whatever the
//! sequence, every aggregate folded from the recorded events equals the state the decisions
//! saw, a tenant always keeps an active admin, and nobody acts across tenants.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::event::{RevocationReason, SessionEvent, TenantEvent, UserEvent};
use domain::session::{Refresh, RefreshOutcome, Session};
use domain::tenant::{SignUpTenant, Tenant};
use domain::user::{LoginOutcome, NewSession, ProfileChanges, SignUpUser};
use domain::values::{DisplayName, Email, TenantName};
use domain::{Actor, Context, DomainEvent, Plan, Role, TenantMembers, User, UserStatus};
use proptest::prelude::*;
use uuid::Uuid;

const TENANTS: usize = 2;
/// People per tenant; the first of each signs the tenant up, the others sign up later.
const PEOPLE: usize = 4;
const SESSION_MINUTES: i64 = 20;

#[derive(Debug, Clone)]
enum Command {
    SignUp {
        person: usize,
    },
    LogIn {
        person: usize,
        password_ok: bool,
    },
    Refresh {
        session: usize,
        rotated_out: bool,
    },
    Revoke {
        session: usize,
        actor: Who,
    },
    ChangeRole {
        actor: Who,
        target: usize,
        admin: bool,
    },
    SetStatus {
        actor: Who,
        target: usize,
        active: bool,
    },
    Erase {
        actor: Who,
        target: usize,
    },
    UpdateProfile {
        actor: Who,
        target: usize,
        name: String,
    },
    GrantPlatformAdmin {
        target: usize,
    },
    SetRateLimit {
        tenant: usize,
        limit: Option<u32>,
    },
}

/// Who acts: a person of either tenant, or a platform administrator.
#[derive(Debug, Clone, Copy)]
enum Who {
    Person(usize),
    Platform,
}

fn person() -> impl Strategy<Value = usize> {
    0..TENANTS * PEOPLE
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![9 => person().prop_map(Who::Person), 1 => Just(Who::Platform)]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        2 => person().prop_map(|person| Command::SignUp { person }),
        3 => (person(), prop::bool::weighted(0.8))
            .prop_map(|(person, password_ok)| Command::LogIn { person, password_ok }),
        3 => (0..16usize, prop::bool::weighted(0.2))
            .prop_map(|(session, rotated_out)| Command::Refresh { session, rotated_out }),
        1 => (0..16usize, who()).prop_map(|(session, actor)| Command::Revoke { session, actor }),
        2 => (who(), person(), any::<bool>())
            .prop_map(|(actor, target, admin)| Command::ChangeRole { actor, target, admin }),
        2 => (who(), person(), any::<bool>())
            .prop_map(|(actor, target, active)| Command::SetStatus { actor, target, active }),
        1 => (who(), person()).prop_map(|(actor, target)| Command::Erase { actor, target }),
        2 => (who(), person(), "[A-Za-z]{1,12}")
            .prop_map(|(actor, target, name)| Command::UpdateProfile { actor, target, name }),
        1 => person().prop_map(|target| Command::GrantPlatformAdmin { target }),
        1 => (0..TENANTS, prop::option::of(1..10_000u32))
            .prop_map(|(tenant, limit)| Command::SetRateLimit { tenant, limit }),
    ]
}

fn tenant_id(tenant: usize) -> Uuid {
    Uuid::from_u128(0x1000 + tenant as u128)
}

fn user_id(person: usize) -> Uuid {
    Uuid::from_u128(0x2000 + person as u128)
}

fn tenant_of(person: usize) -> usize {
    person / PEOPLE
}

/// The recorded history and the states the decisions saw.
struct World {
    now: DateTime<Utc>,
    tenants: Vec<Tenant>,
    members: Vec<TenantMembers>,
    users: Vec<User>,
    /// Each session with its owner and every refresh-token hash it has had, in order.
    sessions: Vec<(Session, usize, Vec<String>)>,
    store: Vec<(DomainEvent, DateTime<Utc>)>,
}

impl World {
    fn new() -> World {
        let mut world = World {
            now: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .expect("time"),
            tenants: vec![Tenant::default(); TENANTS],
            members: (0..TENANTS)
                .map(|t| TenantMembers::new(tenant_id(t)))
                .collect(),
            users: vec![User::default(); TENANTS * PEOPLE],
            sessions: Vec::new(),
            store: Vec::new(),
        };
        for tenant in 0..TENANTS {
            let first = tenant * PEOPLE;
            let (tenant_events, user_events) = domain::tenant::sign_up_tenant(
                &world.tenants[tenant],
                SignUpTenant {
                    tenant_id: tenant_id(tenant),
                    name: TenantName::parse(&format!("Tenant {tenant}")).expect("a name"),
                    plan: Plan::Standard,
                    admin_user_id: user_id(first),
                    admin_email: Email::parse(&format!("p{first}@example.com"))
                        .expect("an address"),
                    admin_display_name: DisplayName::parse(&format!("P{first}")).expect("a name"),
                    admin_password_hash: "hash".into(),
                },
                &world.context(Actor::Anonymous),
            )
            .expect("a tenant signs up");
            world.record_tenant(tenant, tenant_events);
            world.record_user(first, user_events);
        }
        world
    }

    fn context(&self, actor: Actor) -> Context {
        Context {
            now: self.now,
            actor,
        }
    }

    /// The actor as its token would name it: the role it had when it logged in is the one
    /// it has now here (tokens of changed members are refused before any decision).
    fn actor(&self, who: Who) -> Actor {
        match who {
            Who::Platform => Actor::PlatformAdmin {
                user_id: Uuid::from_u128(0x9999),
            },
            Who::Person(person) => Actor::User {
                user_id: user_id(person),
                tenant_id: tenant_id(tenant_of(person)),
                role: self.users[person].role.unwrap_or(Role::Member),
            },
        }
    }

    fn record_tenant(&mut self, tenant: usize, events: Vec<TenantEvent>) {
        for event in events {
            self.tenants[tenant].apply(&event);
            self.store.push((
                DomainEvent::Tenant {
                    tenant_id: tenant_id(tenant),
                    event,
                },
                self.now,
            ));
        }
    }

    fn record_user(&mut self, person: usize, events: Vec<UserEvent>) {
        for event in events {
            self.users[person].apply_at(&event, self.now);
            self.members[tenant_of(person)].apply(user_id(person), &event);
            self.store.push((
                DomainEvent::User {
                    user_id: user_id(person),
                    event,
                },
                self.now,
            ));
        }
    }

    fn record_session(&mut self, index: usize, events: Vec<SessionEvent>) {
        for event in events {
            if let SessionEvent::Refreshed {
                refresh_token_hash, ..
            } = &event
            {
                self.sessions[index].2.push(refresh_token_hash.clone());
            }
            self.sessions[index].0.apply(&event, self.now);
            let session_id = self.sessions[index]
                .0
                .session_id
                .expect("a started session");
            self.store
                .push((DomainEvent::Session { session_id, event }, self.now));
        }
    }

    /// Whether a decision by `actor` on `target` crossed tenants.
    fn crosses_tenants(&self, actor: Who, target: usize) -> bool {
        matches!(actor, Who::Person(person) if tenant_of(person) != tenant_of(target))
    }

    fn run(&mut self, command: Command, step: usize) -> Result<(), TestCaseError> {
        self.now += Duration::minutes(1);
        match command {
            Command::SignUp { person } => {
                let tenant = tenant_of(person);
                let decided = domain::user::sign_up(
                    &self.tenants[tenant],
                    &self.users[person],
                    SignUpUser {
                        user_id: user_id(person),
                        tenant_id: tenant_id(tenant),
                        email: Email::parse(&format!("p{person}@example.com")).expect("an address"),
                        display_name: DisplayName::parse(&format!("P{person}")).expect("a name"),
                        password_hash: "hash".into(),
                    },
                    &self.context(Actor::Anonymous),
                );
                prop_assert_eq!(
                    decided.is_ok(),
                    self.users[person].user_id.is_none(),
                    "a person signs up exactly once"
                );
                if let Ok(events) = decided {
                    self.record_user(person, events);
                }
            }
            Command::LogIn {
                person,
                password_ok,
            } => {
                let session_id = Uuid::from_u128(0x3000 + step as u128);
                let hash = format!("token-{step}-0");
                let decided = domain::user::log_in(
                    &self.users[person],
                    password_ok,
                    NewSession {
                        session_id,
                        refresh_token_hash: hash.clone(),
                        expires_at: self.now + Duration::minutes(SESSION_MINUTES),
                        user_agent: None,
                    },
                    &self.context(Actor::Anonymous),
                );
                let (present, active) = (
                    self.users[person].is_present(),
                    self.users[person].is_active(),
                );
                match decided {
                    Err(_) => prop_assert!(!present, "only the absent cannot try"),
                    Ok(LoginOutcome::Failed(events, _)) => {
                        prop_assert!(!password_ok || !active);
                        self.record_user(person, events);
                    }
                    Ok(LoginOutcome::Succeeded(events)) => {
                        prop_assert!(password_ok && active);
                        self.sessions.push((Session::default(), person, vec![hash]));
                        let index = self.sessions.len() - 1;
                        self.record_session(index, events);
                    }
                }
            }
            Command::Refresh {
                session,
                rotated_out,
            } => {
                if self.sessions.is_empty() {
                    return Ok(());
                }
                let index = session % self.sessions.len();
                let (state, owner, hashes) = &self.sessions[index];
                let presented = if rotated_out && hashes.len() > 1 {
                    hashes[0].clone()
                } else {
                    hashes[hashes.len() - 1].clone()
                };
                let replayed = rotated_out && hashes.len() > 1;
                let was_open = state.is_open(self.now);
                let owner_active = self.users[*owner].is_active();
                let decided = domain::session::refresh(
                    state,
                    &self.users[*owner],
                    Refresh {
                        presented_hash: presented,
                        new_hash: format!("token-{step}-{}", hashes.len()),
                        new_expires_at: self.now + Duration::minutes(SESSION_MINUTES),
                    },
                    &self.context(Actor::Anonymous),
                );
                match decided {
                    Ok(RefreshOutcome::Rotated(events)) => {
                        prop_assert!(was_open && owner_active && !replayed);
                        self.record_session(index, events);
                    }
                    Ok(RefreshOutcome::Rejected(events)) => {
                        if replayed && was_open {
                            prop_assert!(
                                matches!(
                                    events.as_slice(),
                                    [SessionEvent::Revoked {
                                        reason: RevocationReason::RefreshTokenReused,
                                        ..
                                    }]
                                ),
                                "a replayed token closes its open session: {:?}",
                                events
                            );
                        }
                        self.record_session(index, events);
                        if replayed && was_open {
                            prop_assert!(self.sessions[index].0.revoked);
                        }
                    }
                    Err(error) => prop_assert!(false, "a started session refused: {error}"),
                }
            }
            Command::Revoke { session, actor } => {
                if self.sessions.is_empty() {
                    return Ok(());
                }
                let index = session % self.sessions.len();
                let owner = self.sessions[index].1;
                let decided = domain::session::revoke(
                    &self.sessions[index].0,
                    &self.context(self.actor(actor)),
                );
                if self.crosses_tenants(actor, owner) {
                    prop_assert!(decided.is_err(), "a session revoked across tenants");
                }
                if let Ok(events) = decided {
                    self.record_session(index, events);
                }
            }
            Command::ChangeRole {
                actor,
                target,
                admin,
            } => {
                let role = if admin { Role::Admin } else { Role::Member };
                let decided = domain::user::change_role(
                    &self.members[tenant_of(target)],
                    &self.users[target],
                    role,
                    &self.context(self.actor(actor)),
                );
                self.record_decision(actor, target, decided)?;
            }
            Command::SetStatus {
                actor,
                target,
                active,
            } => {
                let context = self.context(self.actor(actor));
                let members = &self.members[tenant_of(target)];
                let decided = if active {
                    domain::user::reactivate(members, &self.users[target], &context)
                } else {
                    domain::user::deactivate(members, &self.users[target], &context)
                };
                self.record_decision(actor, target, decided)?;
            }
            Command::Erase { actor, target } => {
                let decided = domain::user::erase(
                    &self.members[tenant_of(target)],
                    &self.users[target],
                    &self.context(self.actor(actor)),
                );
                self.record_decision(actor, target, decided)?;
                prop_assert!(
                    !self.members[tenant_of(target)]
                        .members
                        .contains_key(&user_id(target))
                        || self.users[target].is_present()
                );
            }
            Command::UpdateProfile {
                actor,
                target,
                name,
            } => {
                let decided = domain::user::update_profile(
                    &self.users[target],
                    ProfileChanges {
                        display_name: Some(DisplayName::parse(&name).expect("a name of letters")),
                        ..Default::default()
                    },
                    &self.context(self.actor(actor)),
                );
                if matches!(actor, Who::Person(person) if person != target) {
                    prop_assert!(decided.is_err(), "a profile updated by someone else");
                }
                self.record_decision(actor, target, decided)?;
            }
            Command::GrantPlatformAdmin { target } => {
                if let Ok(events) = domain::user::grant_platform_admin(&self.users[target]) {
                    self.record_user(target, events);
                }
            }
            Command::SetRateLimit { tenant, limit } => {
                let decided = domain::tenant::set_rate_limit(&self.tenants[tenant], limit)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                self.record_tenant(tenant, decided);
                prop_assert_eq!(self.tenants[tenant].rate_limit_per_hour, limit);
            }
        }
        for (tenant, members) in self.members.iter().enumerate() {
            prop_assert!(
                members.active_admins() >= 1,
                "tenant {} lost its last active admin",
                tenant
            );
        }
        Ok(())
    }

    fn record_decision(
        &mut self,
        actor: Who,
        target: usize,
        decided: Result<Vec<UserEvent>, domain::DomainError>,
    ) -> Result<(), TestCaseError> {
        if let Ok(events) = decided {
            prop_assert!(
                events.is_empty() || !self.crosses_tenants(actor, target),
                "a decision crossed tenants: {:?}",
                events
            );
            prop_assert!(
                events.is_empty() || self.users[target].is_present(),
                "an absent or erased user changed"
            );
            self.record_user(target, events);
        }
        Ok(())
    }

    /// Every aggregate folded from the recorded events alone.
    fn folded(&self) -> (Vec<Tenant>, Vec<TenantMembers>, Vec<User>, Vec<Session>) {
        let mut tenants = vec![Tenant::default(); TENANTS];
        let mut members: Vec<TenantMembers> = (0..TENANTS)
            .map(|t| TenantMembers::new(tenant_id(t)))
            .collect();
        let mut users = vec![User::default(); TENANTS * PEOPLE];
        let mut sessions = vec![Session::default(); self.sessions.len()];
        let session_index = |id: Uuid| {
            self.sessions
                .iter()
                .position(|(s, _, _)| s.session_id == Some(id))
                .expect("a known session")
        };
        for (event, at) in &self.store {
            match event {
                DomainEvent::Tenant {
                    tenant_id: id,
                    event,
                } => {
                    let tenant = (0..TENANTS).find(|t| tenant_id(*t) == *id).expect("tenant");
                    tenants[tenant].apply(event);
                }
                DomainEvent::User { user_id: id, event } => {
                    let person = (0..TENANTS * PEOPLE)
                        .find(|p| user_id(*p) == *id)
                        .expect("person");
                    users[person].apply_at(event, *at);
                    members[tenant_of(person)].apply(*id, event);
                }
                DomainEvent::Session { session_id, event } => {
                    sessions[session_index(*session_id)].apply(event, *at);
                }
                // This model has no teams, invitations or imports (`domain/tests/membership.rs` and
                // `domain/tests/imports.rs` have).
                DomainEvent::Team { .. }
                | DomainEvent::Invitation { .. }
                | DomainEvent::Import { .. }
                | DomainEvent::Webhook { .. } => {}
            }
        }
        (tenants, members, users, sessions)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_command_sequence_folds_back_to_the_states_the_decisions_saw(
        commands in proptest::collection::vec(command(), 1..80)
    ) {
        let mut world = World::new();
        for (step, command) in commands.into_iter().enumerate() {
            world.run(command, step)?;
        }
        let (tenants, members, users, sessions) = world.folded();
        prop_assert_eq!(&tenants, &world.tenants);
        prop_assert_eq!(&members, &world.members);
        prop_assert_eq!(&users, &world.users);
        let seen: Vec<Session> = world.sessions.iter().map(|(s, _, _)| s.clone()).collect();
        prop_assert_eq!(&sessions, &seen);

        // Each stream's version is the number of its events.
        for (index, user) in users.iter().enumerate() {
            let count = world.store.iter().filter(|(e, _)| {
                matches!(e, DomainEvent::User { user_id: id, .. } if *id == user_id(index))
            }).count() as i64;
            prop_assert_eq!(user.version, count);
        }
        // The membership view agrees with each user's own state.
        for (index, user) in users.iter().enumerate() {
            match members[tenant_of(index)].members.get(&user_id(index)) {
                Some(member) => {
                    prop_assert!(user.is_present());
                    prop_assert_eq!(Some(member.role), user.role);
                    prop_assert_eq!(Some(member.status), user.status);
                }
                None => prop_assert!(user.erased || user.user_id.is_none()),
            }
            prop_assert!(
                members.iter().enumerate().all(|(t, m)| t == tenant_of(index) || !m.members.contains_key(&user_id(index))),
                "a person is a member of one tenant only"
            );
        }
        // A deactivated user holds no session that can still be refreshed.
        for (session, owner, _) in &world.sessions {
            if users[*owner].status == Some(UserStatus::Deactivated) && session.is_open(world.now) {
                let outcome = domain::session::refresh(
                    session,
                    &users[*owner],
                    Refresh {
                        presented_hash: session.refresh_token_hash.clone(),
                        new_hash: "never".into(),
                        new_expires_at: world.now,
                    },
                    &world.context(Actor::Anonymous),
                );
                prop_assert!(matches!(outcome, Ok(RefreshOutcome::Rejected(_))));
            }
        }
    }
}
