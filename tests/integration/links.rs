//! The one-time links sent by email: a forgotten password reset from the email (the same
//! answer for known and unknown addresses, the token single-use, every session ended, a lock
//! lifted), the address confirmed with the welcome's link (and required by a tenant that wants
//! it), and an address change confirmed from the new address, the reservation moving with it.

use std::time::Duration;

use integration_tests::smtp::{Received, SmtpServer};
use integration_tests::{PASSWORD, Pipeline, TenantFixture, TestApp, UserFixture};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

const WAIT: Duration = integration_tests::WAIT_LIMIT;
const NEW_PASSWORD: &str = "a brand new passphrase";

fn resets_path(tenant: &TenantFixture) -> String {
    format!("/v1/tenants/{}/password-resets", tenant.tenant_id)
}

/// The first email to `address` whose subject contains `subject` and that is not among the
/// `seen` message ids.
async fn email_with(smtp: &SmtpServer, address: &str, subject: &str, seen: &[String]) -> Received {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = smtp
            .received_by(address)
            .into_iter()
            .find(|mail| mail.subject().contains(subject) && !seen.contains(&mail.message_id()));
        if let Some(mail) = found {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no email \"{subject}\" to {address}: {:?}",
            smtp.received_by(address)
                .iter()
                .map(Received::subject)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seen(smtp: &SmtpServer, address: &str) -> Vec<String> {
    smtp.received_by(address)
        .iter()
        .map(Received::message_id)
        .collect()
}

/// Asks for a reset of `user`'s password and answers the link's token from the email.
async fn reset_link(
    app: &TestApp,
    smtp: &SmtpServer,
    tenant: &TenantFixture,
    email: &str,
) -> String {
    let before = seen(smtp, email);
    let asked = app
        .post(&resets_path(tenant), None, json!({"email": email}))
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{:?}", asked.body);
    let mail = email_with(smtp, email, "Reset your password", &before).await;
    let token = mail.link_token().expect("a link with a token");
    assert!(
        mail.text().contains(&format!(
            "https://people.example/password-resets/confirm?token={token}"
        )),
        "the link is built from PUBLIC_URL: {}",
        mail.text()
    );
    token
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> integration_tests::Answer {
    app.post(
        "/v1/password-resets/confirm",
        None,
        json!({"token": token, "new_password": password}),
    )
    .await
}

async fn user_events(app: &TestApp, user: &UserFixture) -> Vec<String> {
    app.stream_types(user.user_id).await
}

#[tokio::test]
async fn a_forgotten_password_is_reset_from_the_email_and_every_session_ends() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Reset").await;
    let user = app.sign_up_user(tenant.tenant_id, "Forgetful").await;
    let second = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(second.status, StatusCode::CREATED);
    let second_token = second.str("access_token");

    // A known and an unknown address: the same status and the same body.
    let unknown = format!("nobody-{}@example.com", Uuid::new_v4().simple());
    let for_unknown = app
        .post(&resets_path(&tenant), None, json!({"email": unknown}))
        .await;
    let token = reset_link(app, &smtp, &tenant, &user.email).await;
    let for_known = app
        .post(&resets_path(&tenant), None, json!({"email": user.email}))
        .await;
    assert_eq!(for_unknown.status, StatusCode::ACCEPTED);
    assert_eq!(for_known.status, for_unknown.status);
    assert_eq!(for_known.body, for_unknown.body, "the answer says nothing");
    // An unknown tenant answers the same too.
    let no_tenant = app
        .post(
            &format!("/v1/tenants/{}/password-resets", Uuid::now_v7()),
            None,
            json!({"email": user.email}),
        )
        .await;
    assert_eq!(
        (no_tenant.status, &no_tenant.body),
        (for_unknown.status, &for_unknown.body)
    );
    let malformed = app
        .post(
            &resets_path(&tenant),
            None,
            json!({"email": "not an address"}),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.is_problem());
    // Asked again within the minute: no second link (one request event only).
    integration_tests::wait_until("the requests are worked off", || async {
        app.db
            .query_one("SELECT count(*) FROM password_reset_requests", &[])
            .await
            .map(|row| row.get::<_, i64>(0) == 0)
            .unwrap_or(false)
    })
    .await;
    let requested = user_events(app, &user)
        .await
        .iter()
        .filter(|t| *t == "user.password_reset_requested")
        .count();
    assert_eq!(requested, 1, "one link a minute");
    assert!(
        smtp.received_by(&unknown).is_empty(),
        "no email to an unknown address"
    );

    // The token exists in plaintext only in the email.
    assert!(!app.events_table_text().await.contains(&token));
    integration_tests::wait_until("the sent link is forgotten", || async {
        app.db
            .query_one(
                "SELECT count(*) FROM email_secrets WHERE purpose = 'password_reset'",
                &[],
            )
            .await
            .map(|row| row.get::<_, i64>(0) == 0)
            .unwrap_or(false)
    })
    .await;

    // Wrong tokens, a common password: 4xx problems, nothing appended.
    let before = app.event_count().await;
    let (id, _) = token.split_once('.').expect("id.random");
    let forged = format!("{id}.{}", "A".repeat(43));
    for bad in [forged.as_str(), "garbage", ""] {
        let refused = confirm_reset(app, bad, NEW_PASSWORD).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            refused.body
        );
        assert!(refused.is_problem());
    }
    let common = confirm_reset(app, &token, "password123").await;
    assert_eq!(common.status, StatusCode::BAD_REQUEST);
    assert!(
        common.str("detail").contains("most common"),
        "{:?}",
        common.body
    );
    assert_eq!(app.event_count().await, before, "nothing appended");

    let reset = confirm_reset(app, &token, NEW_PASSWORD).await;
    assert_eq!(reset.status, StatusCode::OK, "{:?}", reset.body);
    assert_eq!(reset.body["sessions_ended"], 2, "{:?}", reset.body);
    let position = reset.body["position"].as_i64().expect("position");
    // Every session ended on both APIs; the old password is gone, the new one works.
    for token in [&user.token, &second_token] {
        assert_eq!(
            app.update_me(token, json!({"locale": "en"})).await.status,
            StatusCode::UNAUTHORIZED
        );
        app.query_refused_within_a_second("/v1/me", token).await;
    }
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = app
        .log_in(tenant.tenant_id, &user.email, NEW_PASSWORD)
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    // Single use.
    let again = confirm_reset(app, &token, "yet another passphrase").await;
    assert_eq!(again.status, StatusCode::GONE, "{:?}", again.body);
    assert!(again.str("detail").contains("already used"));
    // The reset proves the address: it is verified now; a security email says so.
    let types = user_events(app, &user).await;
    assert!(
        types.contains(&"user.password_reset".to_owned()),
        "{types:?}"
    );
    assert!(
        types.contains(&"user.email_verified".to_owned()),
        "{types:?}"
    );
    email_with(&smtp, &user.email, "your password was reset", &[]).await;
    let me = app
        .query_caught_up("/v1/me", &fresh.str("access_token"), position)
        .await;
    assert_eq!(me.body["email_verified"], true, "{:?}", me.body);
    let audit = app
        .query_caught_up(
            &format!(
                "/v1/tenants/{}/audit?user_id={}",
                tenant.tenant_id, user.user_id
            ),
            &tenant.admin_token,
            position,
        )
        .await;
    assert!(
        audit
            .body
            .to_string()
            .contains("password reset by email link"),
        "{:?}",
        audit.body
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_reset_lifts_the_lock_of_too_many_wrong_passwords() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Locked").await;
    let user = app.sign_up_user(tenant.tenant_id, "Guessed").await;
    for _ in 0..5 {
        let wrong = app
            .log_in(tenant.tenant_id, &user.email, "not the password at all")
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "locked"
    );
    let link = reset_link(app, &smtp, &tenant, &user.email).await;
    let reset = confirm_reset(app, &link, NEW_PASSWORD).await;
    assert_eq!(reset.status, StatusCode::OK, "{:?}", reset.body);
    let types = user_events(app, &user).await;
    assert!(types.contains(&"user.unlocked".to_owned()), "{types:?}");
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, NEW_PASSWORD)
            .await
            .status,
        StatusCode::CREATED,
        "the reset lifted the lock"
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn signup_sends_a_verification_link_and_a_tenant_can_require_it() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Verified").await;
    let required = app
        .patch(
            &format!("/v1/tenants/{}", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"require_verified_email": true}),
        )
        .await;
    assert_eq!(required.status, StatusCode::OK, "{:?}", required.body);
    assert_eq!(required.body["require_verified_email"], true);
    let email = format!("new-{}@example.com", Uuid::new_v4().simple());
    let created = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": email, "password": PASSWORD, "display_name": "Newcomer"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let user_id = created.id("user_id");
    let refused = app.log_in(tenant.tenant_id, &email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    assert!(refused.str("detail").contains("not verified"));
    // A wrong password is still the plain 401: nothing about verification leaks.
    assert_eq!(
        app.log_in(tenant.tenant_id, &email, "not the password at all")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let mail = email_with(&smtp, &email, "Welcome to “Verified”", &[]).await;
    let token = mail.link_token().expect("a token");
    assert!(
        mail.text().contains(&format!(
            "https://people.example/email-verifications/confirm?token={token}"
        )),
        "{}",
        mail.text()
    );
    let confirmed = app
        .post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.body);
    assert_eq!(confirmed.body["email_verified"], true);
    assert_eq!(confirmed.body["email_changed"], false);
    assert_eq!(
        app.log_in(tenant.tenant_id, &email, PASSWORD).await.status,
        StatusCode::CREATED
    );
    let again = app
        .post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    let position = confirmed.body["position"].as_i64().expect("position");
    let shown = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users/{user_id}", tenant.tenant_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(shown.body["email_verified"], true, "{:?}", shown.body);
    let settings = app
        .query_caught_up(
            &format!("/v1/tenants/{}", tenant.tenant_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(settings.body["require_verified_email"], true);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn an_address_change_is_confirmed_from_the_new_address_and_moves_the_reservation() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Moving").await;
    let user = app.sign_up_user(tenant.tenant_id, "Mover").await;
    let other = app.sign_up_user(tenant.tenant_id, "Neighbour").await;
    let new_email = format!("moved-{}@example.com", Uuid::new_v4().simple());

    let before = app.event_count().await;
    let wrong = app
        .post(
            "/v1/me/email",
            Some(&user.token),
            json!({"new_email": new_email, "password": "not the password at all"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{:?}", wrong.body);
    let same = app
        .post(
            "/v1/me/email",
            Some(&user.token),
            json!({"new_email": user.email.to_uppercase(), "password": PASSWORD}),
        )
        .await;
    assert_eq!(same.status, StatusCode::BAD_REQUEST, "{:?}", same.body);
    let taken = app
        .post(
            "/v1/me/email",
            Some(&user.token),
            json!({"new_email": other.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{:?}", taken.body);
    assert_eq!(app.event_count().await, before, "nothing appended");

    let asked = app
        .post(
            "/v1/me/email",
            Some(&user.token),
            json!({"new_email": new_email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{:?}", asked.body);
    let mail = email_with(&smtp, &new_email, "Confirm your new email address", &[]).await;
    let token = mail.link_token().expect("a token");
    // Nothing moved yet.
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
    let confirmed = app
        .post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.body);
    assert_eq!(confirmed.body["email_changed"], true);
    assert_eq!(
        app.log_in(tenant.tenant_id, &new_email, PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The old address is told, and is free for a new account.
    email_with(&smtp, &user.email, "your email address was changed", &[]).await;
    let reuse = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": user.email, "password": PASSWORD, "display_name": "Successor"}),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::CREATED, "{:?}", reuse.body);
    let position = confirmed.body["position"].as_i64().expect("position");
    let me = app.query_caught_up("/v1/me", &user.token, position).await;
    assert_eq!(me.str("email"), new_email);
    assert_eq!(me.body["email_verified"], true);
    let found = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users?q={}", tenant.tenant_id, new_email),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(
        found.body["items"][0]["user_id"],
        json!(user.user_id),
        "search finds the new address: {:?}",
        found.body
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn of_two_accounts_moving_to_one_address_exactly_one_gets_it() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Race").await;
    let first = app.sign_up_user(tenant.tenant_id, "First").await;
    let second = app.sign_up_user(tenant.tenant_id, "Second").await;
    let contested = format!("contested-{}@example.com", Uuid::new_v4().simple());
    let mut tokens = Vec::new();
    for user in [&first, &second] {
        let before = seen(&smtp, &contested);
        let asked = app
            .post(
                "/v1/me/email",
                Some(&user.token),
                json!({"new_email": contested, "password": PASSWORD}),
            )
            .await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{:?}", asked.body);
        let mail = email_with(&smtp, &contested, "Confirm your new email address", &before).await;
        tokens.push(mail.link_token().expect("a token"));
    }
    let confirm = |token: String| async move {
        app.post(
            "/v1/email-verifications/confirm",
            None,
            json!({"token": token}),
        )
        .await
    };
    let (a, b) = tokio::join!(confirm(tokens[0].clone()), confirm(tokens[1].clone()));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{:?} {:?}",
        a.body,
        b.body
    );
    let winner = if a.status == StatusCode::OK {
        &first
    } else {
        &second
    };
    let login = app.log_in(tenant.tenant_id, &contested, PASSWORD).await;
    assert_eq!(login.status, StatusCode::CREATED);
    let owner: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM unique_reservations WHERE kind = 'email' AND owner_id = $1",
            &[&winner.user_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(owner, 1, "the winner holds one address, the new one");
    let changed: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM events WHERE type = 'user.email_changed' AND tenant_id = $1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(changed, 1);
    projector.stop().await;
    pipeline.finish().await;
}
