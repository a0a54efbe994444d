use std::sync::Arc;

use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;

#[tokio::test]
async fn a_retried_request_with_the_same_key_returns_the_first_answer_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Retry", "admin": {"email": "retry@example.com", "password": PASSWORD, "display_name": "R"}});
    let send = || {
        app.send(
            app.http
                .post(format!("{}/v1/tenants", app.address))
                .header("Idempotency-Key", "signup-7f3a")
                .json(&body),
        )
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    let count = app.event_count().await;
    let second = send().await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body, first.body);
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap_or("")),
        Some("true")
    );
    assert_eq!(app.event_count().await, count);

    let different = app
        .send(
            app.http
                .post(format!("{}/v1/tenants", app.address))
                .header("Idempotency-Key", "signup-7f3a")
                .json(&json!({"name": "Other", "admin": {"email": "other@example.com", "password": PASSWORD, "display_name": "O"}})),
        )
        .await;
    assert_eq!(different.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(different.is_problem());
    assert_eq!(app.event_count().await, count);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_append_once() {
    let app = Arc::new(TestApp::spawn().await);
    let tenant = app.sign_up_tenant("Parallel").await;
    let before = app.event_count().await;
    let mut tasks = JoinSet::new();
    for _ in 0..6 {
        let app = Arc::clone(&app);
        let token = tenant.admin_token.clone();
        tasks.spawn(async move {
            app.send(
                app.http
                    .patch(format!("{}/v1/me", app.address))
                    .bearer_auth(token)
                    .header("Idempotency-Key", "same-update")
                    .json(&json!({"locale": "pt-BR"})),
            )
            .await
        });
    }
    let mut bodies = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.expect("task");
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        bodies.push(answer.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(app.event_count().await, before + 1);
}

#[tokio::test]
async fn keys_are_scoped_to_the_caller_and_refusals_are_not_remembered() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Scoped").await;
    let user = app.sign_up_user(tenant.tenant_id, "Scoped User").await;
    let patch = |token: &str, body: serde_json::Value| {
        app.send(
            app.http
                .patch(format!("{}/v1/me", app.address))
                .bearer_auth(token)
                .header("Idempotency-Key", "k1")
                .json(&body),
        )
    };
    let admin = patch(&tenant.admin_token, json!({"locale": "en"})).await;
    let member = patch(&user.token, json!({"locale": "en"})).await;
    assert_eq!(admin.id("user_id"), tenant.admin_id);
    assert_eq!(
        member.id("user_id"),
        user.user_id,
        "another caller's key is their own"
    );

    let bad_key = app
        .send(
            app.http
                .patch(format!("{}/v1/me", app.address))
                .bearer_auth(&user.token)
                .header("Idempotency-Key", "x".repeat(300))
                .json(&json!({"locale": "en"})),
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);

    let refused = app
        .send(
            app.http
                .post(format!(
                    "{}/v1/tenants/{}/sessions",
                    app.address, tenant.tenant_id
                ))
                .header("Idempotency-Key", "login-1")
                .json(&json!({"email": user.email, "password": "wrong password here"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let corrected = app
        .send(
            app.http
                .post(format!(
                    "{}/v1/tenants/{}/sessions",
                    app.address, tenant.tenant_id
                ))
                .header("Idempotency-Key", "login-1")
                .json(&json!({"email": user.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        corrected.status,
        StatusCode::CREATED,
        "a refused attempt does not pin the key"
    );
}

#[tokio::test]
async fn keys_older_than_their_time_to_live_are_forgotten() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Expiring").await;
    let patch = || {
        app.send(
            app.http
                .patch(format!("{}/v1/me", app.address))
                .bearer_auth(&tenant.admin_token)
                .header("Idempotency-Key", "old-key")
                .json(&json!({"locale": "sv"})),
        )
    };
    assert_eq!(patch().await.status, StatusCode::OK);
    app.db
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'",
            &[],
        )
        .await
        .expect("age the key");
    let store = eventstore::EventStore::new(
        infra::db::pool(&app.database_url, 2).expect("pool"),
        std::sync::Arc::new(infra::crypto::KeyRing::new(
            infra::crypto::MasterKey::generate().expect("rng"),
        )),
    );
    let removed = store
        .purge_idempotency_keys(chrono::Utc::now() - chrono::Duration::hours(24))
        .await
        .expect("purge");
    assert_eq!(removed, 1);
    let again = patch().await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(
        again.headers.get("idempotent-replayed").is_none(),
        "the key was forgotten"
    );
}

/// What a login or a refresh answers holds live tokens: it is never stored for a key, and
/// replaying the key gets a problem instead of the tokens (ADR 0022). An attacker reading
/// the table finds neither the tokens nor a fingerprint to test password guesses against.
#[tokio::test]
async fn credentials_are_never_remembered_and_a_fingerprint_cannot_check_a_password() {
    use sha2::{Digest, Sha256};
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Withheld").await;
    let user = app.sign_up_user(tenant.tenant_id, "Holder").await;
    let path = format!("/v1/tenants/{}/sessions", tenant.tenant_id);
    let body = json!({"email": user.email, "password": PASSWORD});
    let log_in = || {
        app.send(
            app.http
                .post(format!("{}{path}", app.address))
                .header("Idempotency-Key", "login-once")
                .json(&body),
        )
    };
    let first = log_in().await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let refresh_token = first.str("refresh_token");
    let access_token = first.str("access_token");
    let refreshed = app
        .send(
            app.http
                .post(format!("{}/v1/sessions/refresh", app.address))
                .header("Idempotency-Key", "refresh-once")
                .json(&json!({"refresh_token": refresh_token})),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);

    let table: String = app
        .db
        .query_one(
            "SELECT coalesce(string_agg(to_jsonb(k)::text, ' '), '') FROM idempotency_keys k",
            &[],
        )
        .await
        .expect("the table")
        .get(0);
    for secret in [
        access_token.as_str(),
        refresh_token.as_str(),
        refreshed.str("access_token").as_str(),
        refreshed.str("refresh_token").as_str(),
    ] {
        assert!(!table.contains(secret), "a token is stored: {table}");
    }
    // The offline guess: the fingerprint of the request with the right password.
    let mut guess = Sha256::new();
    guess.update(format!("POST {path}\n").as_bytes());
    guess.update(serde_json::to_vec(&body).expect("json"));
    let guess = guess.finalize().to_vec();
    let stored: Vec<u8> = app
        .db
        .query_one(
            "SELECT request_hash FROM idempotency_keys WHERE idempotency_key = 'login-once'",
            &[],
        )
        .await
        .expect("the login's record")
        .get(0);
    assert_ne!(stored, guess, "the fingerprint is keyed");

    let events = app.event_count().await;
    let replayed = log_in().await;
    assert_eq!(replayed.status, StatusCode::CONFLICT);
    assert!(replayed.is_problem());
    assert!(
        replayed.body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("idempotent-answer-withheld")),
        "{:?}",
        replayed.body
    );
    assert!(replayed.body.get("access_token").is_none());
    assert_eq!(app.event_count().await, events, "a replay appends nothing");
}

/// Erasing a user forgets the answers remembered about them (their own, and others' about
/// them).
#[tokio::test]
async fn erasure_forgets_the_answers_remembered_about_the_user() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Forgotten").await;
    let user = app.sign_up_user(tenant.tenant_id, "Remembered").await;
    let renamed = app
        .send(
            app.http
                .patch(format!("{}/v1/me", app.address))
                .bearer_auth(&user.token)
                .header("Idempotency-Key", "rename")
                .json(&json!({"display_name": "Quintessa Rememberable"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    let by_admin = app
        .send(
            app.http
                .patch(format!(
                    "{}/v1/tenants/{}/users/{}",
                    app.address, tenant.tenant_id, user.user_id
                ))
                .bearer_auth(&tenant.admin_token)
                .header("Idempotency-Key", "admin-rename")
                .json(&json!({"display_name": "Quintessa Renamed"})),
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{:?}", by_admin.body);
    let remembered = || async {
        let count: i64 = app
            .db
            .query_one(
                "SELECT count(*) FROM idempotency_keys
                  WHERE subjects @> ARRAY[$1]::uuid[] OR scope = 'user:' || $1::text",
                &[&user.user_id],
            )
            .await
            .expect("count")
            .get(0);
        count
    };
    assert_eq!(remembered().await, 2, "the user's own and the admin's");
    let erased = app.erase(&tenant, user.user_id).await;
    assert!(erased.status.is_success(), "{:?}", erased.body);
    assert_eq!(
        remembered().await,
        0,
        "an answer about the erased user is still remembered"
    );
}
