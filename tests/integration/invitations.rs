//! Invitations end to end: the link only in the email, acceptance creating or rejoining the
//! account in one transaction, resend and revoke, and expiry by the scheduler.

use std::time::Duration;

use chrono::Utc;
use integration_tests::smtp::SmtpServer;
use integration_tests::{PASSWORD, Pipeline, TenantFixture, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = integration_tests::WAIT_LIMIT;

fn invitations_path(tenant: &TenantFixture) -> String {
    format!("/v1/tenants/{}/invitations", tenant.tenant_id)
}

/// Invites `email` and waits for the email: answers the invitation's id and the link's token.
async fn invite(
    app: &TestApp,
    smtp: &SmtpServer,
    tenant: &TenantFixture,
    body: Value,
) -> (Uuid, String) {
    let email = body["email"].as_str().expect("an address").to_owned();
    let seen: Vec<String> = smtp
        .received_by(&email)
        .iter()
        .filter_map(invitation_token)
        .collect();
    let answer = app
        .post(&invitations_path(tenant), Some(&tenant.admin_token), body)
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert!(answer.body["expires_at"].is_string());
    assert_eq!(
        answer.body.as_object().map(|o| o.len()),
        Some(3),
        "no token in the answer: {:?}",
        answer.body
    );
    let mail = new_link(smtp, &email, &seen).await;
    let token = mail.link_token().expect("a link with a token");
    assert!(
        mail.text().contains(&format!(
            "https://people.example/invitations/accept?token={token}"
        )),
        "the link is built from PUBLIC_URL: {}",
        mail.text()
    );
    (answer.id("invitation_id"), token)
}

/// The token of an invitation link in `mail` (the welcome carries a link of its own).
fn invitation_token(mail: &integration_tests::smtp::Received) -> Option<String> {
    mail.text()
        .contains("/invitations/accept?token=")
        .then(|| mail.link_token())
        .flatten()
}

/// The first email to `email` carrying an invitation link not among `seen`.
async fn new_link(
    smtp: &SmtpServer,
    email: &str,
    seen: &[String],
) -> integration_tests::smtp::Received {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let fresh = smtp
            .received_by(email)
            .into_iter()
            .find(|m| invitation_token(m).is_some_and(|t| !seen.contains(&t)));
        if let Some(mail) = fresh {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new invitation email to {email}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn address(name: &str) -> String {
    format!("{name}-{}@invited.example", Uuid::new_v4().simple())
}

async fn accept(app: &TestApp, token: &str, name: Option<&str>) -> integration_tests::Answer {
    let body = match name {
        Some(name) => json!({"token": token, "password": PASSWORD, "display_name": name}),
        None => json!({"token": token}),
    };
    app.post("/v1/invitations/accept", None, body).await
}

#[tokio::test]
async fn an_invitation_creates_the_account_in_its_team_tells_the_inviter_and_its_token_is_only_in_the_email()
 {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Hotel").await;
    let settings = app
        .patch(
            &format!("/v1/tenants/{}", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"signup_policy": "invitation_only"}),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{:?}", settings.body);
    let team = app
        .post(
            &format!("/v1/tenants/{}/teams", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"name": "Front desk"}),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{:?}", team.body);
    let team_id = team.id("team_id");
    let email = address("guest");
    let (invitation_id, token) = invite(
        app,
        &smtp,
        &tenant,
        json!({"email": email, "team_ids": [team_id], "role": "member"}),
    )
    .await;
    let mail = smtp.received_by(&email).pop().expect("mail");
    assert!(mail.subject().contains("Hotel"), "{}", mail.subject());
    assert!(mail.text().contains("Hotel Admin"), "the inviter is named");

    // A stranger's self-signup is refused and appends nothing.
    let before = app.event_count().await;
    let stranger = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": address("stranger"), "password": PASSWORD, "display_name": "Stranger"}),
        )
        .await;
    assert_eq!(
        stranger.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        stranger.body
    );
    assert_eq!(app.event_count().await, before);

    // Wrong tokens change nothing; a new account needs both a password and a name.
    let wrong = format!("{}.{}", invitation_id.simple(), "A".repeat(43));
    for bad in [wrong.as_str(), "garbage", ""] {
        let answer = accept(app, bad, Some("Guest")).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            answer.body
        );
        assert!(answer.is_problem());
    }
    let nameless = accept(app, &token, None).await;
    assert_eq!(
        nameless.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        nameless.body
    );
    let weak = app
        .post(
            "/v1/invitations/accept",
            None,
            json!({"token": token, "password": "short", "display_name": "Guest"}),
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.event_count().await, before, "refusals append nothing");

    let accepted = accept(app, &token, Some("Guest Person")).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{:?}", accepted.body);
    assert_eq!(accepted.id("tenant_id"), tenant.tenant_id);
    let user_id = accepted.id("user_id");
    let position = accepted.body["position"].as_i64().expect("position");
    // One transaction: the acceptance, the account, the membership, the team.
    let types: Vec<String> = app
        .db
        .query(
            "SELECT type FROM events WHERE transaction_id = (SELECT transaction_id FROM events WHERE position = $1)
              ORDER BY position",
            &[&position],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        types,
        [
            "invitation.accepted",
            "user.created",
            "tenant.member_joined",
            "team.members_added"
        ]
    );
    // Used once: the same token again is refused.
    let again = accept(app, &token, Some("Guest Person")).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);

    let login = app.log_in(tenant.tenant_id, &email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.body);
    let member_token = login.str("access_token");
    let team_view = app
        .query_caught_up(
            &format!("/v1/tenants/{}/teams/{team_id}", tenant.tenant_id),
            &member_token,
            position,
        )
        .await;
    assert_eq!(team_view.status, StatusCode::OK, "{:?}", team_view.body);
    assert_eq!(team_view.body["members"][0]["user_id"], user_id.to_string());
    assert_eq!(team_view.body["member_count"], 1);
    let listed = app
        .query_caught_up(
            &format!("{}?status=accepted", invitations_path(&tenant)),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(
        listed.body["items"][0]["invitation_id"],
        invitation_id.to_string()
    );
    assert_eq!(listed.body["items"][0]["accepted_by"], user_id.to_string());
    assert_eq!(listed.body["items"][0]["email"], email);

    // The inviter is told; the new member gets the welcome (not a second joining email).
    let told = smtp.wait_for(&tenant.admin_email, 2, WAIT).await;
    assert!(
        told.iter()
            .any(|m| m.subject() == "Your invitation was accepted"
                && m.text().contains("Guest Person")),
        "{:?}",
        told.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    pipeline.wait_for_one_email_job(user_id, "welcome").await;
    pipeline
        .wait_for_one_email_job(user_id, "team_welcome")
        .await;
    pipeline.wait_for_projections().await;
    let member_joined: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM email_jobs WHERE user_id = $1 AND template = 'member_joined'",
            &[&user_id],
        )
        .await
        .expect("jobs")
        .get(0);
    assert_eq!(
        member_joined, 0,
        "joining in the account's creation is the welcome"
    );

    // The token exists in the email only: not in events, read models, jobs or logs' tables.
    integration_tests::wait_until("the link's secret to be forgotten once sent", || async {
        app.db
            .query_one("SELECT count(*) FROM email_secrets", &[])
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) == 0)
    })
    .await;
    let random = token.split_once('.').expect("token").1;
    assert!(!app.events_table_text().await.contains(random));
    assert!(!pipeline.read_models_text().await.contains(random));
    let jobs: String = app
        .db
        .query_one(
            "SELECT coalesce(string_agg(email_jobs::text, ''), '') FROM email_jobs",
            &[],
        )
        .await
        .expect("jobs")
        .get(0);
    assert!(!jobs.contains(random), "an email job keeps the token");
    let hash = infra::crypto::token_hash(&token);
    let stored: String = app
        .db
        .query_one(
            "SELECT data->>'token_hash' FROM events WHERE type = 'invitation.created' AND aggregate_id = $1",
            &[&invitation_id],
        )
        .await
        .expect("event")
        .get(0);
    assert_eq!(stored, hash, "only the token's hash is stored");
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_resent_invitation_retires_the_old_link_and_a_revoked_one_opens_nothing() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Cinema").await;
    let email = address("resent");
    let (invitation_id, first) = invite(app, &smtp, &tenant, json!({"email": email})).await;
    // One pending invitation per address.
    let twice = app
        .post(
            &invitations_path(&tenant),
            Some(&tenant.admin_token),
            json!({"email": email.to_uppercase()}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{:?}", twice.body);

    let resend_path = format!("{}/{invitation_id}/resend", invitations_path(&tenant));
    let resent = app
        .post(
            &resend_path,
            Some(&tenant.admin_token),
            json!({"expires_in_minutes": 60}),
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{:?}", resent.body);
    assert_eq!(resent.body["status"], "pending");
    let second = new_link(&smtp, &email, std::slice::from_ref(&first))
        .await
        .link_token()
        .expect("a new link");
    assert_ne!(first, second);
    let old = accept(app, &first, Some("Late")).await;
    assert_eq!(
        old.status,
        StatusCode::BAD_REQUEST,
        "the old link stopped working: {:?}",
        old.body
    );

    let revoke_path = format!("{}/{invitation_id}", invitations_path(&tenant));
    let revoked = app.delete(&revoke_path, Some(&tenant.admin_token)).await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert_eq!(revoked.body["status"], "revoked");
    let gone = accept(app, &second, Some("Late")).await;
    assert_eq!(gone.status, StatusCode::GONE, "{:?}", gone.body);
    assert!(gone.is_problem());
    let again = app.delete(&revoke_path, Some(&tenant.admin_token)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let resend_revoked = app
        .post(&resend_path, Some(&tenant.admin_token), json!({}))
        .await;
    assert_eq!(resend_revoked.status, StatusCode::CONFLICT);
    // Revoked, the address can be invited again; the new link works.
    let (_, third) = invite(app, &smtp, &tenant, json!({"email": email})).await;
    let joined = accept(app, &third, Some("Finally")).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{:?}", joined.body);
    // Inviting an active member is refused.
    let member = app
        .post(
            &invitations_path(&tenant),
            Some(&tenant.admin_token),
            json!({"email": email}),
        )
        .await;
    assert_eq!(member.status, StatusCode::CONFLICT, "{:?}", member.body);
    for (body, what) in [
        (
            json!({"email": address("x"), "expires_in_minutes": 0}),
            "a zero expiry",
        ),
        (
            json!({"email": address("x"), "expires_in_minutes": 43_201}),
            "a long expiry",
        ),
        (json!({"email": "not an address"}), "a bad address"),
        (
            json!({"email": address("x"), "team_ids": [Uuid::new_v4()]}),
            "an unknown team",
        ),
        (
            json!({"email": address("x"), "role": "owner"}),
            "an unknown role",
        ),
    ] {
        let answer = app
            .post(&invitations_path(&tenant), Some(&tenant.admin_token), body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {:?}",
            answer.body
        );
    }
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_removed_member_is_invited_back_to_their_own_account() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Gym").await;
    let user = app.sign_up_user(tenant.tenant_id, "Returning").await;
    let removed = app
        .delete(
            &format!("/v1/tenants/{}/members/{}", tenant.tenant_id, user.user_id),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    let (_, token) = invite(
        app,
        &smtp,
        &tenant,
        json!({"email": user.email, "role": "admin"}),
    )
    .await;
    let back = accept(app, &token, None).await;
    assert_eq!(back.status, StatusCode::CREATED, "{:?}", back.body);
    assert_eq!(back.id("user_id"), user.user_id, "the same account");
    let login = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(
        login.status,
        StatusCode::CREATED,
        "their own password: {:?}",
        login.body
    );
    // The old session stays ended; the new one acts as an admin.
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;
    let admin_view = app
        .query(
            &format!("/v1/tenants/{}/invitations", tenant.tenant_id),
            Some(&login.str("access_token")),
            Some(back.body["position"].as_i64().unwrap_or_default()),
        )
        .await;
    assert_eq!(admin_view.status, StatusCode::OK, "{:?}", admin_view.body);
    // One of the tenant's users again: active in the read model and found by the search.
    pipeline.wait_for_projections().await;
    let users = app
        .query(
            &format!("/v1/tenants/{}/users?q=Returning", tenant.tenant_id),
            Some(&tenant.admin_token),
            back.body["position"].as_i64(),
        )
        .await;
    assert_eq!(users.status, StatusCode::OK, "{:?}", users.body);
    assert_eq!(users.body["items"][0]["user_id"], user.user_id.to_string());
    assert_eq!(users.body["items"][0]["status"], "active");
    assert_eq!(users.body["items"][0]["role"], "admin");
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn two_concurrent_accepts_of_one_token_make_exactly_one_account() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector =
        pipeline.spawn_projector_of(vec![projector::projections::Projection::EmailJobs]);
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Retail").await;
    let email = address("racer");
    let (invitation_id, token) = invite(app, &smtp, &tenant, json!({"email": email})).await;
    let (first, second) = tokio::join!(
        accept(app, &token, Some("Racer One")),
        accept(app, &token, Some("Racer Two"))
    );
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{first:?} {second:?}"
    );
    let counts = app
        .db
        .query_one(
            "SELECT count(*) FILTER (WHERE type = 'user.created'),
                    count(*) FILTER (WHERE type = 'invitation.accepted' AND aggregate_id = $1)
               FROM events",
            &[&invitation_id],
        )
        .await
        .expect("counts");
    // The tenant's admin and the one new account.
    assert_eq!(counts.get::<_, i64>(0), 2);
    assert_eq!(counts.get::<_, i64>(1), 1);
    projector.stop().await;
    pipeline.finish().await;
}

/// Appends `count` invitations whose expiry has passed, as if they were created a while ago.
async fn lapsed_invitations(app: &TestApp, tenant: &TenantFixture, count: usize) -> Vec<Uuid> {
    let store = app.store();
    let mut ids = Vec::new();
    for i in 0..count {
        let invitation_id = Uuid::now_v7();
        let unit = store.begin().await.expect("begin");
        unit.append(
            eventstore::Changes::of_events(
                tenant.tenant_id,
                Utc::now(),
                &[eventstore::ExpectedVersion {
                    aggregate_id: invitation_id,
                    version: 0,
                }],
                vec![domain::DomainEvent::Invitation {
                    invitation_id,
                    event: domain::InvitationEvent::Created {
                        invitation_id,
                        tenant_id: tenant.tenant_id,
                        user_id: Uuid::now_v7(),
                        email: format!("lapsed-{i}@invited.example"),
                        role: domain::Role::Member,
                        team_ids: vec![],
                        token_hash: "0".repeat(64),
                        expires_at: Utc::now() - chrono::Duration::seconds(1),
                        invited_by: tenant.admin_id,
                        import_id: None,
                    },
                }],
            ),
            &eventstore::EventMetadata {
                source: "test".into(),
                ..Default::default()
            },
        )
        .await
        .expect("append");
        unit.commit().await.expect("commit");
        ids.push(invitation_id);
    }
    ids
}

async fn expired_count(app: &TestApp) -> i64 {
    app.db
        .query_one(
            "SELECT count(*) FROM events WHERE type = 'invitation.expired'",
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn lapsed_invitations_expire_by_themselves_exactly_once_with_two_schedulers_and_one_killed() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Services").await;
    const COUNT: usize = 120;
    let ids = lapsed_invitations(app, &tenant, COUNT).await;
    let mut first = crate::faults::projector_process(&pipeline);
    let second = crate::faults::projector_process(&pipeline);
    // Killed mid-way: once the expiries have begun and before they are done.
    integration_tests::wait_until("the first expiries", || async {
        expired_count(app).await > 0
    })
    .await;
    first.0.kill().expect("SIGKILL one scheduler");
    let _ = first.0.wait();
    let at_kill = expired_count(app).await;
    integration_tests::wait_until("every lapsed invitation to expire", || async {
        expired_count(app).await >= COUNT as i64
    })
    .await;
    // Nothing more comes, however long the survivor keeps going.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(second);
    let per_stream = app
        .db
        .query(
            "SELECT aggregate_id, count(*) FROM events WHERE type = 'invitation.expired' GROUP BY aggregate_id",
            &[],
        )
        .await
        .expect("counts");
    assert!(
        at_kill < COUNT as i64,
        "the kill landed after every expiry: {at_kill}"
    );
    assert_eq!(per_stream.len(), COUNT, "expired at the kill: {at_kill}");
    for row in &per_stream {
        assert!(ids.contains(&row.get(0)));
        assert_eq!(row.get::<_, i64>(1), 1, "an invitation expired twice");
    }
    let system = app
        .db
        .query_one(
            "SELECT count(*) FROM events WHERE type = 'invitation.expired'
                AND metadata->>'source' = 'eventra-scheduler' AND metadata->>'actor_id' IS NULL",
            &[],
        )
        .await
        .expect("metadata")
        .get::<_, i64>(0);
    assert_eq!(system, COUNT as i64, "appended by the system");
    pipeline.finish().await;
}

#[tokio::test]
async fn an_expired_invitation_is_listed_as_expired_and_its_token_is_gone() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Expiry").await;
    let email = address("late");
    let (invitation_id, token) = invite(
        app,
        &smtp,
        &tenant,
        json!({"email": email, "expires_in_minutes": 1}),
    )
    .await;
    // Its expiry brought forward, as time would: the stored expiry is what the aggregate
    // decides by, so the test moves the clock of the invitation, not of the system.
    let lapsed = lapsed_invitations(app, &tenant, 1).await;
    integration_tests::wait_until("the lapsed invitation to expire", || async {
        expired_count(app).await == 1
    })
    .await;
    pipeline.wait_for_projections().await;
    let listed = app
        .query(
            &format!("{}?status=expired", invitations_path(&tenant)),
            Some(&tenant.admin_token),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["invitation_id"], lapsed[0].to_string());
    assert!(items[0]["closed_at"].is_string());
    let pending = app
        .query(
            &format!("{}?status=pending", invitations_path(&tenant)),
            Some(&tenant.admin_token),
            None,
        )
        .await;
    assert_eq!(
        pending.body["items"][0]["invitation_id"],
        invitation_id.to_string()
    );
    let bad = app
        .query(
            &format!("{}?status=lost", invitations_path(&tenant)),
            Some(&tenant.admin_token),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // The inviter hears of the expiry.
    pipeline
        .wait_for_one_email_job(tenant.admin_id, "invitation_expired")
        .await;
    // The real invitation is still open; its token still works.
    let joined = accept(app, &token, Some("Just In Time")).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{:?}", joined.body);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_tenant_that_turned_expiry_notices_off_does_not_tell_the_inviter() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Quiet").await;
    let settings = app
        .patch(
            &format!("/v1/tenants/{}", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"invitation_expiry_notices": false}),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{:?}", settings.body);
    assert_eq!(settings.body["invitation_expiry_notices"], false);
    lapsed_invitations(app, &tenant, 1).await;
    integration_tests::wait_until("the lapsed invitation to expire", || async {
        expired_count(app).await == 1
    })
    .await;
    pipeline.wait_for_projections().await;
    let told: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM email_jobs WHERE template = 'invitation_expired'",
            &[],
        )
        .await
        .expect("jobs")
        .get(0);
    assert_eq!(told, 0);
    let shown = app
        .query(
            &format!("/v1/tenants/{}", tenant.tenant_id),
            Some(&tenant.admin_token),
            None,
        )
        .await;
    assert_eq!(
        shown.body["invitation_expiry_notices"], false,
        "{:?}",
        shown.body
    );
    projector.stop().await;
    pipeline.finish().await;
}
