//! An account's end: a scheduled deletion locks out at once and can be undone until the
//! system purges the account; self-service deletion and deactivation need the password; a
//! removed member follows the same clock.

use integration_tests::smtp::SmtpServer;
use integration_tests::{PASSWORD, Pipeline, TenantFixture, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

fn user_path(tenant: &TenantFixture, user_id: Uuid) -> String {
    format!("/v1/tenants/{}/users/{user_id}", tenant.tenant_id)
}

async fn grace_days(app: &TestApp, tenant: &TenantFixture, days: u32) {
    let answer = app
        .patch(
            &format!("/v1/tenants/{}", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"deletion_grace_days": days}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
}

async fn count(app: &TestApp, sql: &str, id: Uuid) -> i64 {
    app.db.query_one(sql, &[&id]).await.expect("count").get(0)
}

#[tokio::test]
async fn a_scheduled_deletion_locks_the_account_out_hides_it_and_an_admin_restores_it() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Soft").await;
    let user = app.sign_up_user(tenant.tenant_id, "Soon Gone").await;
    let path = user_path(&tenant, user.user_id);

    let bad_mode = app
        .delete(&format!("{path}?mode=shred"), Some(&tenant.admin_token))
        .await;
    assert_eq!(bad_mode.status, StatusCode::BAD_REQUEST);
    let scheduled = app.delete(&path, Some(&tenant.admin_token)).await;
    assert_eq!(
        scheduled.status,
        StatusCode::ACCEPTED,
        "{:?}",
        scheduled.body
    );
    let purge_at =
        chrono::DateTime::parse_from_rfc3339(&scheduled.str("purge_at")).expect("purge_at");
    let days = (purge_at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!(
        (29 * 24..=30 * 24).contains(&days),
        "30 days by default: {days} hours"
    );
    let position = scheduled.body["position"].as_i64().expect("position");
    // Locked out at once on both APIs; a login is answered as for an unknown address.
    assert_eq!(
        app.update_me(&user.token, json!({"locale": "en"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;
    assert_eq!(
        app.refresh(&user.refresh_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let before = app.event_count().await;
    let login = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login.str("detail"), "the email or password is not correct");
    assert_eq!(
        app.event_count().await,
        before,
        "attempts on a closed account append nothing"
    );
    // The address stays reserved.
    let taken = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": user.email, "password": PASSWORD, "display_name": "Impostor"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    // Hidden from lists and search; an admin still sees it by id, with its purge time.
    let list = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users?q=soon", tenant.tenant_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(
        list.body["items"].as_array().map(Vec::len),
        Some(0),
        "{:?}",
        list.body
    );
    let one = app
        .query_caught_up(&path, &tenant.admin_token, position)
        .await;
    assert_eq!(one.body["status"], "deletion_scheduled", "{:?}", one.body);
    assert!(one.body["purge_at"].is_string());
    let twice = app.delete(&path, Some(&tenant.admin_token)).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);

    let restored = app
        .post(
            &format!("{path}/restore"),
            Some(&tenant.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    let position = restored.body["position"].as_i64().expect("position");
    let again = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    let list = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users?q=soon", tenant.tenant_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(
        list.body["items"][0]["user_id"],
        user.user_id.to_string(),
        "{:?}",
        list.body
    );
    assert_eq!(list.body["items"][0]["status"], "active");
    assert!(list.body["items"][0]["purge_at"].is_null());
    let not_scheduled = app
        .post(
            &format!("{path}/restore"),
            Some(&tenant.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(not_scheduled.status, StatusCode::CONFLICT);
    pipeline
        .wait_for_one_email_job(user.user_id, "deletion_scheduled")
        .await;
    pipeline
        .wait_for_one_email_job(user.user_id, "deletion_cancelled")
        .await;
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn the_system_purges_a_due_account_once_leaving_no_personal_data_and_mailing_the_confirmation_once()
 {
    let smtp = SmtpServer::start().await;
    let mut pipeline = Pipeline::start().await;
    pipeline.settings.smtp_url = Some(smtp.url().into());
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Purges").await;
    let user = app
        .sign_up_user(tenant.tenant_id, "Xanthippe Purgeable")
        .await;
    let team = app
        .post(
            &format!("/v1/tenants/{}/teams", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"name": "Doomed"}),
        )
        .await;
    let team_id = team.id("team_id");
    let added = app
        .post(
            &format!("/v1/tenants/{}/teams/{team_id}/members", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"user_ids": [user.user_id]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK);
    grace_days(app, &tenant, 0).await;
    let scheduled = app
        .delete(&user_path(&tenant, user.user_id), Some(&tenant.admin_token))
        .await;
    assert_eq!(
        scheduled.status,
        StatusCode::ACCEPTED,
        "{:?}",
        scheduled.body
    );
    integration_tests::wait_until("the system to purge the account", || async {
        count(
            app,
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND type = 'user.deleted'",
            user.user_id,
        )
        .await
            == 1
    })
    .await;
    let purge = app
        .db
        .query_one(
            "SELECT metadata->>'source', metadata->>'actor_id', data->>'deleted_by'
               FROM events WHERE aggregate_id = $1 AND type = 'user.deleted'",
            &[&user.user_id],
        )
        .await
        .expect("the purge");
    assert_eq!(purge.get::<_, String>(0), "eventra-scheduler");
    assert_eq!(purge.get::<_, Option<String>>(1), None);
    assert_eq!(
        purge.get::<_, String>(2),
        tenant.admin_id.to_string(),
        "caused by who scheduled it"
    );
    let confirmations = || {
        smtp.received_by(&user.email)
            .iter()
            .filter(|m| m.subject() == "Your account was deleted")
            .count()
    };
    integration_tests::wait_until("the deletion confirmation", || async {
        confirmations() > 0
    })
    .await;
    pipeline.wait_for_projections().await;
    assert_eq!(confirmations(), 1, "one deletion confirmation");
    // The team lost them in the same transaction.
    assert_eq!(
        count(
            app,
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND type = 'team.members_removed'",
            team_id
        )
        .await,
        1
    );
    // Nothing readable is left: events, read models, email jobs. (The search index's files on
    // disk keep a deleted document's terms until its segment merges: the erasure hardening
    // issue removes them.)
    for secret in ["Xanthippe", "xanthippe", "Purgeable"] {
        assert!(
            !app.events_table_text().await.contains(secret),
            "{secret} in the events"
        );
        assert!(
            !pipeline.read_models_text().await.contains(secret),
            "{secret} in the read models"
        );
    }
    let jobs: String = app
        .db
        .query_one(
            "SELECT coalesce(string_agg(email_jobs::text, ''), '') FROM email_jobs",
            &[],
        )
        .await
        .expect("jobs")
        .get(0);
    assert!(
        !jobs.to_lowercase().contains("xanthippe"),
        "an email job keeps the address"
    );
    // Restoring is too late now.
    let late = app
        .post(
            &format!("{}/restore", user_path(&tenant, user.user_id)),
            Some(&tenant.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn purges_happen_once_each_with_two_schedulers_and_one_killed() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Many").await;
    grace_days(app, &tenant, 0).await;
    const COUNT: usize = 40;
    let mut users = Vec::new();
    for i in 0..COUNT {
        let user = app
            .sign_up_user(tenant.tenant_id, &format!("Doomed {i}"))
            .await;
        users.push(user.user_id);
    }
    let mut first = crate::faults::projector_process(&pipeline);
    let second = crate::faults::projector_process(&pipeline);
    for user_id in &users {
        let answer = app
            .delete(&user_path(&tenant, *user_id), Some(&tenant.admin_token))
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED);
    }
    let deleted = || async {
        app.db
            .query_one(
                "SELECT count(*) FROM events WHERE type = 'user.deleted'",
                &[],
            )
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    integration_tests::wait_until("the first purges", || async { deleted().await > 0 }).await;
    first.0.kill().expect("SIGKILL one scheduler");
    let _ = first.0.wait();
    integration_tests::wait_until("every account purged", || async {
        deleted().await >= COUNT as i64
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    drop(second);
    for user_id in &users {
        assert_eq!(
            count(
                app,
                "SELECT count(*) FROM events WHERE aggregate_id = $1 AND type = 'user.deleted'",
                *user_id
            )
            .await,
            1
        );
        assert_eq!(
            count(app, "SELECT count(*) FROM email_jobs WHERE user_id = $1 AND template = 'account_deleted'", *user_id).await,
            1,
            "one deletion confirmation"
        );
        assert_eq!(
            count(
                app,
                "SELECT count(*) FROM data_keys WHERE subject_id = $1",
                *user_id
            )
            .await,
            0
        );
    }
    pipeline.finish().await;
}

#[tokio::test]
async fn self_service_deletion_and_deactivation_need_the_password_and_spare_the_last_admin() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Myself").await;
    let leaver = app.sign_up_user(tenant.tenant_id, "Self Deleter").await;
    let pauser = app.sign_up_user(tenant.tenant_id, "Self Pauser").await;
    let before = app.event_count().await;
    for (method, path, token) in [
        (reqwest::Method::DELETE, "/v1/me", &leaver.token),
        (reqwest::Method::POST, "/v1/me/deactivate", &pauser.token),
    ] {
        let wrong = app
            .request(
                method.clone(),
                path,
                Some(token),
                Some(json!({"password": "not my password"})),
            )
            .await;
        assert_eq!(
            wrong.status,
            StatusCode::FORBIDDEN,
            "{path}: {:?}",
            wrong.body
        );
        assert!(wrong.is_problem());
        let last_admin = app
            .request(
                method.clone(),
                path,
                Some(&tenant.admin_token),
                Some(json!({"password": PASSWORD})),
            )
            .await;
        assert_eq!(
            last_admin.status,
            StatusCode::CONFLICT,
            "{path}: {:?}",
            last_admin.body
        );
        let missing = app
            .request(method, path, Some(token), Some(json!({})))
            .await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.event_count().await, before, "refusals append nothing");

    let deleted = app
        .request(
            reqwest::Method::DELETE,
            "/v1/me",
            Some(&leaver.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{:?}", deleted.body);
    assert!(deleted.body["purge_at"].is_string());
    app.query_refused_within_a_second("/v1/me", &leaver.token)
        .await;
    let event = app
        .decrypted_stream("user", leaver.user_id)
        .await
        .into_iter()
        .find(|e| e.event_type == "user.deletion_scheduled")
        .expect("scheduled");
    assert_eq!(event.data["by_self"], true);

    let paused = app
        .post(
            "/v1/me/deactivate",
            Some(&pauser.token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    assert_eq!(
        app.update_me(&pauser.token, json!({"locale": "en"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The confirmation, not the admin's security alert.
    pipeline
        .wait_for_one_email_job(pauser.user_id, "deactivated")
        .await;
    let alerts = count(
        app,
        "SELECT count(*) FROM email_jobs WHERE user_id = $1 AND template = 'deactivated_by_admin'",
        pauser.user_id,
    )
    .await;
    assert_eq!(alerts, 0);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_removed_member_follows_the_deletion_clock_and_an_accepted_invitation_stops_it() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Clock").await;
    let user = app.sign_up_user(tenant.tenant_id, "Removed Soon").await;
    let removed = app
        .delete(
            &format!("/v1/tenants/{}/members/{}", tenant.tenant_id, user.user_id),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
    let types = app.stream_types(user.user_id).await;
    assert_eq!(
        &types[types.len() - 2..],
        ["tenant.member_removed", "user.deletion_scheduled"]
    );
    // Restoring does not make them a member again, but stops the clock.
    let restored = app
        .post(
            &format!("{}/restore", user_path(&tenant, user.user_id)),
            Some(&tenant.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    assert_eq!(
        app.stream_types(user.user_id)
            .await
            .last()
            .map(String::as_str),
        Some("user.deletion_cancelled")
    );
    let login = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "still not a member");
    pipeline.finish().await;
}

async fn log_in_as(
    app: &TestApp,
    tenant_id: Uuid,
    email: &str,
    password: &str,
    agent: &str,
) -> integration_tests::Answer {
    let request = app
        .http
        .post(format!("{}/v1/tenants/{tenant_id}/sessions", app.address))
        .header("User-Agent", agent)
        .json(&json!({"email": email, "password": password}));
    app.send(request).await
}

#[tokio::test]
async fn a_user_sees_their_sessions_and_ends_the_others_with_one_email() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Devices").await;
    let user = app.sign_up_user(tenant.tenant_id, "Many Devices").await;
    let laptop = log_in_as(
        app,
        tenant.tenant_id,
        &user.email,
        PASSWORD,
        "Laptop Browser/1.0",
    )
    .await;
    let phone = log_in_as(
        app,
        tenant.tenant_id,
        &user.email,
        PASSWORD,
        "Phone App/2.0",
    )
    .await;
    assert_eq!(phone.status, StatusCode::CREATED);
    let position = phone.body["position"].as_i64().expect("position");
    let token = laptop.str("access_token");
    let listed = app
        .query_caught_up("/v1/me/sessions", &token, position)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{items:?}");
    let current: Vec<&serde_json::Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["session_id"], laptop.str("session_id"));
    assert_eq!(current[0]["user_agent"], "Laptop Browser/1.0");
    assert!(items.iter().any(|s| s["user_agent"] == "Phone App/2.0"));
    assert!(
        items
            .iter()
            .all(|s| s["last_used_at"].is_string() && s["created_at"].is_string())
    );

    let bad = app.delete("/v1/me/sessions?scope=all", Some(&token)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let ended = app
        .delete("/v1/me/sessions?scope=others", Some(&token))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{:?}", ended.body);
    assert_eq!(ended.body["revoked"], 2);
    for other in [&user.token, &phone.str("access_token")] {
        app.query_refused_within_a_second("/v1/me", other).await;
    }
    integration_tests::wait_until("the session to read the profile", || async {
        app.query("/v1/me", Some(&token), None).await.status == StatusCode::OK
    })
    .await;
    let position = ended.body["position"].as_i64().expect("position");
    let left = app
        .query_caught_up("/v1/me/sessions", &token, position)
        .await;
    let ids: Vec<&str> = left.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert_eq!(ids, [laptop.str("session_id")]);
    pipeline
        .wait_for_one_email_job(user.user_id, "other_sessions_ended")
        .await;
    pipeline.wait_for_projections().await;
    let variables: serde_json::Value = app
        .db
        .query_one("SELECT variables FROM email_jobs WHERE user_id = $1 AND template = 'other_sessions_ended'", &[&user.user_id])
        .await
        .expect("job")
        .get(0);
    assert_eq!(variables["count"], "2");
    assert_eq!(
        count(app, "SELECT count(*) FROM email_jobs WHERE user_id = $1 AND template IN ('session_ended', 'session_revoked')", user.user_id).await,
        0,
        "one email for them all"
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_every_other_session() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Passwords").await;
    let user = app.sign_up_user(tenant.tenant_id, "Changer").await;
    let other = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    let before = app.event_count().await;
    let wrong = app
        .post(
            "/v1/me/password",
            Some(&user.token),
            json!({"current_password": "not it at all", "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{:?}", wrong.body);
    let weak = app
        .post(
            "/v1/me/password",
            Some(&user.token),
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST, "{:?}", weak.body);
    assert_eq!(app.event_count().await, before, "refusals append nothing");
    let changed = app
        .post(
            "/v1/me/password",
            Some(&user.token),
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["sessions_ended"], 1);
    app.query_refused_within_a_second("/v1/me", &other.str("access_token"))
        .await;
    // This session stays (read from the users view once the projector has reached it).
    integration_tests::wait_until("this session to read the profile", || async {
        app.query("/v1/me", Some(&user.token), None).await.status == StatusCode::OK
    })
    .await;
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, "a brand new passphrase")
            .await
            .status,
        StatusCode::CREATED
    );
    assert!(
        !app.events_table_text()
            .await
            .contains("a brand new passphrase")
    );
    pipeline
        .wait_for_one_email_job(user.user_id, "password_changed")
        .await;
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn wrong_passwords_lock_an_account_without_growing_its_stream_until_the_system_unlocks_it() {
    let pipeline = Pipeline::start_with(None, |settings| {
        settings.lockout.first_lock = chrono::Duration::seconds(2);
    })
    .await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Guessing").await;
    let user = app.sign_up_user(tenant.tenant_id, "Guessed").await;
    for _ in 0..5 {
        let wrong = app
            .log_in(tenant.tenant_id, &user.email, "not the password at all")
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let types = app.stream_types(user.user_id).await;
    assert_eq!(
        types.last().map(String::as_str),
        Some("user.locked"),
        "{types:?}"
    );
    let before = app.event_count().await;
    for password in [PASSWORD, "another wrong one"] {
        let locked = app.log_in(tenant.tenant_id, &user.email, password).await;
        assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            locked.str("detail"),
            "the email or password is not correct",
            "no enumeration"
        );
    }
    assert_eq!(
        app.event_count().await,
        before,
        "attempts while locked append nothing"
    );
    // The session opened before still works: a lock is about guessing, not about the owner
    // (read from the users view once the projector has reached the user).
    integration_tests::wait_until("the locked user's session to read the profile", || async {
        app.query("/v1/me", Some(&user.token), None).await.status == StatusCode::OK
    })
    .await;
    integration_tests::wait_until("the system to unlock the account", || async {
        app.stream_types(user.user_id)
            .await
            .last()
            .map(String::as_str)
            == Some("user.unlocked")
    })
    .await;
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
    pipeline
        .wait_for_one_email_job(user.user_id, "account_locked")
        .await;
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn an_admin_reactivation_unlocks_a_locked_account() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Unlocking").await;
    let user = app.sign_up_user(tenant.tenant_id, "Locked Out").await;
    for _ in 0..5 {
        app.log_in(tenant.tenant_id, &user.email, "not the password at all")
            .await;
    }
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let unlocked = app
        .manage_user(
            tenant.tenant_id,
            user.user_id,
            &tenant.admin_token,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(unlocked.status, StatusCode::OK, "{:?}", unlocked.body);
    assert_eq!(
        app.stream_types(user.user_id)
            .await
            .last()
            .map(String::as_str),
        Some("user.unlocked")
    );
    assert_eq!(
        app.log_in(tenant.tenant_id, &user.email, PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
}
