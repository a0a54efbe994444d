//! Given/when/then for teams and invitations, and properties over command sequences: no
//! team ever holds someone who is not a member of the tenant, and an invitation is accepted
//! at most once.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::event::{InvitationEvent, TeamDeparture, TeamEvent, UserEvent};
use domain::invitation::{Invitation, Invite, NewAccount};
use domain::team::{CreateTeam, Team, TeamChanges};
use domain::values::{DisplayName, Email, TeamDescription, TeamName};
use domain::{Actor, Context, DomainError, Role, TenantMembers, User};
use proptest::prelude::*;
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const OTHER_TENANT: Uuid = Uuid::from_u128(0x7f);
const ADMIN: Uuid = Uuid::from_u128(0xad);
const MEMBER: Uuid = Uuid::from_u128(0x3e);
const TEAM: Uuid = Uuid::from_u128(0x7ea);
const INVITATION: Uuid = Uuid::from_u128(0x1);
const NEW_USER: Uuid = Uuid::from_u128(0x2);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .expect("a time")
}

fn as_user(user_id: Uuid, role: Role) -> Context {
    Context {
        now: now(),
        actor: Actor::User {
            user_id,
            tenant_id: TENANT,
            role,
        },
    }
}

fn admin() -> Context {
    as_user(ADMIN, Role::Admin)
}

fn joined(user_id: Uuid, role: Role) -> UserEvent {
    UserEvent::MemberJoined {
        tenant_id: TENANT,
        user_id,
        role,
    }
}

fn given_members() -> TenantMembers {
    let mut members = TenantMembers::new(TENANT);
    members.apply(ADMIN, &joined(ADMIN, Role::Admin));
    members.apply(MEMBER, &joined(MEMBER, Role::Member));
    members
}

fn created_team() -> TeamEvent {
    TeamEvent::Created {
        team_id: TEAM,
        tenant_id: TENANT,
        name: "Front desk".into(),
        description: None,
        created_by: ADMIN,
    }
}

fn given_team(events: &[TeamEvent], members: &mut TenantMembers) -> Team {
    let mut team = Team::default();
    for event in std::iter::once(&created_team()).chain(events) {
        team.apply(event);
        members.apply_team(TEAM, event);
    }
    team
}

#[test]
fn an_admin_creates_a_team_and_a_member_cannot() {
    let members = given_members();
    let command = CreateTeam {
        team_id: TEAM,
        tenant_id: TENANT,
        name: TeamName::parse("  Front desk ").expect("a name"),
        description: Some(TeamDescription::parse("").expect("empty")),
    };
    let events = domain::team::create(&members, &Team::default(), command.clone(), &admin())
        .expect("created");
    assert_eq!(events, vec![created_team()]);
    assert_eq!(
        domain::team::create(
            &members,
            &Team::default(),
            command.clone(),
            &as_user(MEMBER, Role::Member)
        ),
        Err(DomainError::NotAllowed)
    );
    let existing = Team::from_events(&[created_team()]);
    assert_eq!(
        domain::team::create(&members, &existing, command, &admin()),
        Err(DomainError::TeamAlreadyExists)
    );
}

#[test]
fn adding_members_records_only_those_not_already_in_and_refuses_strangers_whole() {
    let mut members = given_members();
    let team = given_team(
        &[TeamEvent::MembersAdded {
            team_id: TEAM,
            user_ids: vec![ADMIN],
            added_by: ADMIN,
        }],
        &mut members,
    );
    let events = domain::team::add_members(&members, &team, &[ADMIN, MEMBER, MEMBER], &admin())
        .expect("added");
    assert_eq!(
        events,
        vec![TeamEvent::MembersAdded {
            team_id: TEAM,
            user_ids: vec![MEMBER],
            added_by: ADMIN,
        }]
    );
    assert_eq!(
        domain::team::add_members(&members, &team, &[ADMIN], &admin()),
        Ok(vec![]),
        "adding who is in already changes nothing"
    );
    let stranger = Uuid::from_u128(0x5);
    let refused = domain::team::add_members(&members, &team, &[MEMBER, stranger], &admin());
    assert!(
        matches!(&refused, Err(DomainError::Invalid(reason)) if reason.contains(&stranger.to_string())),
        "{refused:?}"
    );
    assert!(matches!(
        domain::team::add_members(&members, &team, &[], &admin()),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn a_team_of_another_tenant_or_a_deleted_one_is_not_found() {
    let mut members = given_members();
    let deleted = given_team(
        &[TeamEvent::Deleted {
            team_id: TEAM,
            deleted_by: ADMIN,
        }],
        &mut members,
    );
    assert_eq!(
        domain::team::delete(&members, &deleted, &admin()),
        Err(DomainError::TeamNotFound)
    );
    let foreign = Team::from_events(&[TeamEvent::Created {
        team_id: TEAM,
        tenant_id: OTHER_TENANT,
        name: "Theirs".into(),
        description: None,
        created_by: ADMIN,
    }]);
    assert_eq!(
        domain::team::add_members(&members, &foreign, &[MEMBER], &admin()),
        Err(DomainError::TeamNotFound)
    );
}

#[test]
fn an_update_records_only_what_changes_and_an_empty_description_clears_it() {
    let mut members = given_members();
    let team = given_team(&[], &mut members);
    let unchanged = TeamChanges {
        name: Some(TeamName::parse("Front desk").expect("a name")),
        description: Some(TeamDescription::parse("").expect("empty")),
    };
    assert_eq!(
        domain::team::update(&members, &team, unchanged, &admin()),
        Ok(vec![])
    );
    let described = TeamChanges {
        name: None,
        description: Some(TeamDescription::parse("Reception").expect("text")),
    };
    let events = domain::team::update(&members, &team, described, &admin()).expect("updated");
    let mut after = team.clone();
    events.iter().for_each(|event| after.apply(event));
    assert_eq!(after.description.as_deref(), Some("Reception"));
    let cleared = TeamChanges {
        name: None,
        description: Some(TeamDescription::parse(" ").expect("blank")),
    };
    let events = domain::team::update(&members, &after, cleared, &admin()).expect("cleared");
    events.iter().for_each(|event| after.apply(event));
    assert_eq!(after.description, None);
}

#[test]
fn removing_a_member_from_a_team_needs_them_in_it() {
    let mut members = given_members();
    let team = given_team(&[], &mut members);
    assert_eq!(
        domain::team::remove_member(&members, &team, MEMBER, &admin()),
        Err(DomainError::NotInTeam)
    );
}

#[test]
fn leaving_the_tenant_leaves_every_team_one_is_in() {
    let mut members = given_members();
    let team = given_team(
        &[TeamEvent::MembersAdded {
            team_id: TEAM,
            user_ids: vec![MEMBER, ADMIN],
            added_by: ADMIN,
        }],
        &mut members,
    );
    assert_eq!(members.teams_of(MEMBER), vec![TEAM]);
    let departures = domain::team::departures(&[team], MEMBER, ADMIN);
    assert_eq!(
        departures,
        vec![(
            TEAM,
            vec![TeamEvent::MembersRemoved {
                team_id: TEAM,
                user_ids: vec![MEMBER],
                removed_by: ADMIN,
                reason: TeamDeparture::LeftTenant,
            }]
        )]
    );
}

fn invite(email: &str) -> Invite {
    Invite {
        invitation_id: INVITATION,
        tenant_id: TENANT,
        new_user_id: NEW_USER,
        email: Email::parse(email).expect("an address"),
        role: Role::Member,
        team_ids: vec![],
        token_hash: "hash-1".into(),
        expires_at: now() + Duration::days(7),
    }
}

fn given_invitation(later: &[InvitationEvent]) -> Invitation {
    let members = given_members();
    let created = domain::invitation::invite(
        &members,
        &User::default(),
        &Invitation::default(),
        invite("new@example.com"),
        &admin(),
    )
    .expect("invited");
    Invitation::from_events(created.iter().chain(later))
}

fn account() -> Option<NewAccount> {
    Some(NewAccount {
        display_name: Some(DisplayName::parse("New").expect("a name")),
        password_hash: "argon".into(),
    })
}

#[test]
fn an_admin_invites_an_address_and_a_member_cannot() {
    let members = given_members();
    let events = domain::invitation::invite(
        &members,
        &User::default(),
        &Invitation::default(),
        invite("new@example.com"),
        &admin(),
    )
    .expect("invited");
    assert!(matches!(
        &events[..],
        [InvitationEvent::Created { user_id, invited_by, .. }] if *user_id == NEW_USER && *invited_by == ADMIN
    ));
    assert_eq!(
        domain::invitation::invite(
            &members,
            &User::default(),
            &Invitation::default(),
            invite("new@example.com"),
            &as_user(MEMBER, Role::Member)
        ),
        Err(DomainError::NotAllowed)
    );
}

#[test]
fn an_open_invitation_or_an_active_member_refuses_a_second_invitation() {
    let members = given_members();
    let open = given_invitation(&[]);
    assert_eq!(
        domain::invitation::invite(
            &members,
            &User::default(),
            &open,
            invite("new@example.com"),
            &admin()
        ),
        Err(DomainError::InvitationPending)
    );
    let revoked = given_invitation(&[InvitationEvent::Revoked {
        invitation_id: INVITATION,
        revoked_by: ADMIN,
    }]);
    assert!(
        domain::invitation::invite(
            &members,
            &User::default(),
            &revoked,
            invite("new@example.com"),
            &admin()
        )
        .is_ok()
    );
    let mut lapsed = open.clone();
    lapsed.expires_at = Some(now() - Duration::seconds(1));
    assert!(
        domain::invitation::invite(
            &members,
            &User::default(),
            &lapsed,
            invite("new@example.com"),
            &admin()
        )
        .is_ok(),
        "an invitation past its expiry no longer blocks a new one"
    );
    let member = User::from_events(&[
        UserEvent::Created {
            user_id: MEMBER,
            tenant_id: TENANT,
            email: "m@example.com".into(),
            display_name: "M".into(),
            password_hash: "h".into(),
            email_verification: None,
            source: None,
        },
        joined(MEMBER, Role::Member),
    ]);
    assert_eq!(
        domain::invitation::invite(
            &members,
            &member,
            &Invitation::default(),
            invite("m@example.com"),
            &admin()
        ),
        Err(DomainError::AlreadyMember)
    );
}

#[test]
fn a_removed_member_is_invited_back_to_their_own_account() {
    let members = given_members();
    let removed = User::from_events(&[
        UserEvent::Created {
            user_id: MEMBER,
            tenant_id: TENANT,
            email: "m@example.com".into(),
            display_name: "M".into(),
            password_hash: "h".into(),
            email_verification: None,
            source: None,
        },
        joined(MEMBER, Role::Member),
        UserEvent::MemberRemoved {
            tenant_id: TENANT,
            user_id: MEMBER,
            removed_by: ADMIN,
            reason: domain::event::RemovalReason::Removed,
        },
    ]);
    let events = domain::invitation::invite(
        &members,
        &removed,
        &Invitation::default(),
        invite("m@example.com"),
        &admin(),
    )
    .expect("invited");
    let invitation = Invitation::from_events(&events);
    assert_eq!(invitation.user_id, Some(MEMBER));
    let accepted = domain::invitation::accept(
        &invitation,
        "hash-1",
        &removed,
        None,
        &[],
        &as_user(MEMBER, Role::Member),
    )
    .expect("accepted");
    assert!(!accepted.new_account);
    assert_eq!(accepted.user, vec![joined(MEMBER, Role::Member)]);
}

#[test]
fn accepting_creates_the_account_joins_the_invited_teams_and_works_once() {
    let mut members = given_members();
    let team = given_team(&[], &mut members);
    let mut command = invite("new@example.com");
    command.team_ids = vec![TEAM, TEAM];
    command.role = Role::Admin;
    let created = domain::invitation::invite(
        &members,
        &User::default(),
        &Invitation::default(),
        command,
        &admin(),
    )
    .expect("invited");
    let invitation = Invitation::from_events(&created);
    assert_eq!(invitation.team_ids, vec![TEAM], "teams without repeats");
    let anonymous = Context {
        now: now(),
        actor: Actor::Anonymous,
    };
    let accepted = domain::invitation::accept(
        &invitation,
        "hash-1",
        &User::default(),
        account(),
        &[team],
        &anonymous,
    )
    .expect("accepted");
    assert!(accepted.new_account);
    assert_eq!(accepted.user_id, NEW_USER);
    assert!(
        matches!(&accepted.user[..], [UserEvent::Created { email, .. }, UserEvent::MemberJoined { role: Role::Admin, .. }] if email == "new@example.com")
    );
    assert_eq!(accepted.teams.len(), 1);
    let mut after = invitation.clone();
    accepted
        .invitation
        .iter()
        .for_each(|event| after.apply(event));
    assert!(matches!(
        domain::invitation::accept(
            &after,
            "hash-1",
            &User::default(),
            account(),
            &[],
            &anonymous
        ),
        Err(DomainError::InvitationClosed(_))
    ));
}

#[test]
fn a_wrong_revoked_expired_or_replaced_token_opens_nothing() {
    let anonymous = Context {
        now: now(),
        actor: Actor::Anonymous,
    };
    let open = given_invitation(&[]);
    let accept = |invitation: &Invitation, hash: &str, context: &Context| {
        domain::invitation::accept(invitation, hash, &User::default(), account(), &[], context)
    };
    assert_eq!(
        accept(&open, "wrong", &anonymous),
        Err(DomainError::InvitationTokenInvalid)
    );
    assert_eq!(
        accept(&Invitation::default(), "hash-1", &anonymous),
        Err(DomainError::InvitationTokenInvalid)
    );
    let revoked = given_invitation(&[InvitationEvent::Revoked {
        invitation_id: INVITATION,
        revoked_by: ADMIN,
    }]);
    assert!(matches!(
        accept(&revoked, "hash-1", &anonymous),
        Err(DomainError::InvitationGone(_))
    ));
    let later = Context {
        now: now() + Duration::days(8),
        actor: Actor::Anonymous,
    };
    assert!(matches!(
        accept(&open, "hash-1", &later),
        Err(DomainError::InvitationGone(_))
    ));
    let resent = given_invitation(&[InvitationEvent::Resent {
        invitation_id: INVITATION,
        token_hash: "hash-2".into(),
        expires_at: now() + Duration::days(1),
        resent_by: ADMIN,
    }]);
    assert_eq!(
        accept(&resent, "hash-1", &anonymous),
        Err(DomainError::InvitationTokenInvalid)
    );
    assert!(accept(&resent, "hash-2", &anonymous).is_ok());
    assert!(
        matches!(
            domain::invitation::accept(&open, "hash-1", &User::default(), None, &[], &anonymous),
            Err(DomainError::Invalid(_))
        ),
        "a new account needs a password and a name"
    );
}

#[test]
fn the_system_expires_a_pending_invitation_once_and_only_after_its_time() {
    let open = given_invitation(&[]);
    let expires_at = open.expires_at.expect("an expiry");
    assert_eq!(
        domain::invitation::expire(&open, expires_at - Duration::seconds(1)),
        vec![]
    );
    let expired = domain::invitation::expire(&open, expires_at);
    assert_eq!(
        expired,
        vec![InvitationEvent::Expired {
            invitation_id: INVITATION,
            expires_at
        }]
    );
    let after = Invitation::from_events(
        [InvitationEvent::Created {
            invitation_id: INVITATION,
            tenant_id: TENANT,
            user_id: NEW_USER,
            email: "new@example.com".into(),
            role: Role::Member,
            team_ids: vec![],
            token_hash: "hash-1".into(),
            expires_at,
            invited_by: ADMIN,
            import_id: None,
        }]
        .iter()
        .chain(&expired),
    );
    assert_eq!(
        domain::invitation::expire(&after, expires_at + Duration::hours(1)),
        vec![]
    );
    let accepted = given_invitation(&[InvitationEvent::Accepted {
        invitation_id: INVITATION,
        user_id: NEW_USER,
        new_account: true,
    }]);
    assert_eq!(
        domain::invitation::expire(&accepted, expires_at + Duration::hours(1)),
        vec![]
    );
}

/// One step of an admin's or a member's life in a tenant with two teams.
#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Leave(usize),
    AddToTeam(usize, Vec<usize>),
    RemoveFromTeam(usize, usize),
    DeleteTeam(usize),
}

const PEOPLE: usize = 5;
const TEAMS: usize = 2;

fn person(i: usize) -> Uuid {
    Uuid::from_u128(0x100 + i as u128)
}

fn team_id(i: usize) -> Uuid {
    Uuid::from_u128(0x200 + i as u128)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..PEOPLE).prop_map(Step::Join),
        (0..PEOPLE).prop_map(Step::Leave),
        ((0..TEAMS), proptest::collection::vec(0..PEOPLE + 2, 1..4))
            .prop_map(|(t, people)| Step::AddToTeam(t, people)),
        ((0..TEAMS), (0..PEOPLE)).prop_map(|(t, p)| Step::RemoveFromTeam(t, p)),
        (0..TEAMS).prop_map(Step::DeleteTeam),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Whatever admins do (through the decisions, with departures cascading as the commands
    /// do), no team ever holds someone who is not a member of the tenant, and the membership
    /// view's teams are the teams' own states.
    #[test]
    fn no_command_sequence_leaves_a_team_with_a_member_who_is_not_in_the_tenant(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let mut members = TenantMembers::new(TENANT);
        members.apply(ADMIN, &joined(ADMIN, Role::Admin));
        let mut users: Vec<User> = vec![User::default(); PEOPLE];
        let mut teams: Vec<Team> = vec![Team::default(); TEAMS];
        for (i, team) in teams.iter_mut().enumerate() {
            let command = CreateTeam {
                team_id: team_id(i),
                tenant_id: TENANT,
                name: TeamName::parse("T").expect("a name"),
                description: None,
            };
            for event in domain::team::create(&members, team, command, &admin()).expect("created") {
                team.apply(&event);
                members.apply_team(team_id(i), &event);
            }
        }
        for step in steps {
            match step {
                Step::Join(p) => {
                    if users[p].is_member() { continue; }
                    let event = joined(person(p), Role::Member);
                    if users[p].user_id.is_none() {
                        users[p].apply(&UserEvent::Created {
                            user_id: person(p), tenant_id: TENANT, email: "x@example.com".into(),
                            display_name: "X".into(), password_hash: "h".into(), email_verification: None, source: None });
                    }
                    users[p].apply(&event);
                    members.apply(person(p), &event);
                }
                Step::Leave(p) => {
                    let Ok(events) = domain::lifecycle::remove_member(&members, &users[p], &admin()) else { continue };
                    for event in &events {
                        users[p].apply(event);
                        members.apply(person(p), event);
                    }
                    for (id, events) in domain::team::departures(&teams, person(p), ADMIN) {
                        let i = (0..TEAMS).find(|i| team_id(*i) == id).expect("a team");
                        for event in &events {
                            teams[i].apply(event);
                            members.apply_team(id, event);
                        }
                    }
                }
                Step::AddToTeam(t, people) => {
                    let ids: Vec<Uuid> = people.iter().map(|p| person(*p)).collect();
                    if let Ok(events) = domain::team::add_members(&members, &teams[t], &ids, &admin()) {
                        for event in &events {
                            teams[t].apply(event);
                            members.apply_team(team_id(t), event);
                        }
                    }
                }
                Step::RemoveFromTeam(t, p) => {
                    if let Ok(events) = domain::team::remove_member(&members, &teams[t], person(p), &admin()) {
                        for event in &events {
                            teams[t].apply(event);
                            members.apply_team(team_id(t), event);
                        }
                    }
                }
                Step::DeleteTeam(t) => {
                    if let Ok(events) = domain::team::delete(&members, &teams[t], &admin()) {
                        for event in &events {
                            teams[t].apply(event);
                            members.apply_team(team_id(t), event);
                        }
                    }
                }
            }
            for (i, team) in teams.iter().enumerate() {
                for user_id in &team.members {
                    prop_assert!(members.members.contains_key(user_id),
                        "team {i} holds {user_id}, who is not a member");
                }
                let viewed = members.teams.get(&team_id(i));
                prop_assert_eq!(viewed.is_some(), team.exists());
                if let Some(viewed) = viewed {
                    prop_assert_eq!(viewed, &team.members);
                }
            }
        }
    }

    /// However tokens, revocations, resends, expiries and acceptances interleave, an
    /// invitation is accepted at most once, and never after it was revoked or expired.
    #[test]
    fn an_invitation_is_accepted_at_most_once(
        actions in proptest::collection::vec((0..5u8, 0..3u8, 0..200i64), 1..30)
    ) {
        let members = given_members();
        let mut invitation = given_invitation(&[]);
        let mut current_hash = "hash-1".to_owned();
        let mut accepted = 0;
        let mut closed = false;
        for (action, token, minutes) in actions {
            let at = now() + Duration::minutes(minutes * 60);
            let context = Context { now: at, actor: Actor::Anonymous };
            let admin_now = Context { now: at, actor: admin().actor };
            let events = match action {
                0 | 1 => {
                    let hash = match token { 0 => current_hash.clone(), 1 => "hash-1".into(), _ => "nope".into() };
                    match domain::invitation::accept(&invitation, &hash, &User::default(), account(), &[], &context) {
                        Ok(acceptance) => {
                            prop_assert!(!closed, "accepted after it was closed");
                            prop_assert_eq!(hash, current_hash.clone());
                            accepted += 1;
                            acceptance.invitation
                        }
                        Err(_) => vec![],
                    }
                }
                2 => {
                    let hash = format!("hash-{minutes}-{token}");
                    match domain::invitation::resend(&members, &invitation, hash.clone(), at + Duration::days(1), &admin_now) {
                        Ok(events) => { current_hash = hash; events }
                        Err(_) => vec![],
                    }
                }
                3 => domain::invitation::revoke(&members, &invitation, &admin_now).unwrap_or_default(),
                _ => domain::invitation::expire(&invitation, at),
            };
            for event in &events {
                if matches!(event, InvitationEvent::Revoked { .. } | InvitationEvent::Expired { .. } | InvitationEvent::Accepted { .. }) {
                    closed = true;
                }
                invitation.apply(event);
            }
        }
        prop_assert!(accepted <= 1, "accepted {accepted} times");
    }
}
