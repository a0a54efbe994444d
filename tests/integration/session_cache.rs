//! The query API remembers the sessions it authenticated for at most a second (ADR 0031):
//! a known session's request needs no round trip to Postgres, and every change that ends or
//! narrows access — announced by the authentication state's triggers — is heard at once; a
//! change whose announcement is lost still bites within the second, and while the listening
//! connection is down nothing is remembered.

use std::time::{Duration, Instant};

use integration_tests::{TestApp, wait_until};
use reqwest::StatusCode;
use serde_json::json;

/// The query API's count of authentications answered from memory.
async fn hits(app: &TestApp) -> u64 {
    app.metrics(&app.query_address)
        .await
        .lines()
        .find(|line| line.starts_with("eventra_auth_cache_total{result=\"hit\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Revokes a session behind the APIs' backs: its trigger off, so nothing is announced.
async fn revoke_unannounced(app: &TestApp, session_id: uuid::Uuid) {
    app.db
        .batch_execute("ALTER TABLE auth_sessions DISABLE TRIGGER auth_session_revoked")
        .await
        .expect("trigger off");
    app.db
        .execute(
            "UPDATE auth_sessions SET revoked_at = now() WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .expect("revoke");
    app.db
        .batch_execute("ALTER TABLE auth_sessions ENABLE TRIGGER auth_session_revoked")
        .await
        .expect("trigger on");
}

#[tokio::test]
async fn a_known_session_is_answered_from_memory_and_forgotten_when_it_ends() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Cached").await;
    let user = app.sign_up_user(tenant.tenant_id, "Cached User").await;
    let me = || async { app.query("/v1/me", Some(&user.token), None).await.status };
    assert_ne!(me().await, StatusCode::UNAUTHORIZED);
    // The listener connects in the background when the query API starts.
    wait_until("the query API to remember the session", || async {
        let before = hits(&app).await;
        let _ = me().await;
        let _ = me().await;
        hits(&app).await > before
    })
    .await;
    let before = hits(&app).await;
    for _ in 0..5 {
        assert_ne!(me().await, StatusCode::UNAUTHORIZED);
    }
    assert!(hits(&app).await >= before + 5, "answered from memory");

    // Revoked: announced, heard, refused long before the second is up.
    let revoked = app.revoke_session(user.session_id, &user.token).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let started = Instant::now();
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_reads_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Demoting").await;
    let second = app.sign_up_user(tenant.tenant_id, "Second Admin").await;
    let path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, second.user_id);
    let promoted = app
        .patch(&path, Some(&tenant.admin_token), json!({"role": "admin"}))
        .await;
    assert_eq!(promoted.status, StatusCode::OK);
    // No projector runs here: an admin's read answers "not available yet", a member's 403.
    let audit = format!("/v1/tenants/{}/audit", tenant.tenant_id);
    let read = || async { app.query(&audit, Some(&second.token), None).await.status };
    wait_until("the promoted admin to be let through", || async {
        read().await != StatusCode::FORBIDDEN
    })
    .await;
    let demoted = app
        .patch(&path, Some(&tenant.admin_token), json!({"role": "member"}))
        .await;
    assert_eq!(demoted.status, StatusCode::OK);
    let started = Instant::now();
    // Announced and heard: well within the second a lost announcement could take.
    while read().await != StatusCode::FORBIDDEN {
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "still an admin after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_lost_announcement_still_bites_within_a_second_and_a_lost_listener_keeps_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Unheard").await;
    let user = app.sign_up_user(tenant.tenant_id, "Unheard User").await;
    assert_ne!(
        app.query("/v1/me", Some(&user.token), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A revocation nobody announces (its trigger off): only the TTL ends it.
    revoke_unannounced(&app, user.session_id).await;
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;

    // The listening connection dies: nothing is remembered, every request asks Postgres, so
    // a change is effective at once even unannounced; then it listens again.
    let other = app.sign_up_user(tenant.tenant_id, "Other User").await;
    assert_ne!(
        app.query("/v1/me", Some(&other.token), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let killed: i64 = app
        .db
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE application_name = 'eventra-listen-eventra_auth_changed'
                AND datname = current_database()",
            &[],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed >= 1, "a listener was found");
    revoke_unannounced(&app, other.session_id).await;
    app.query_refused_within_a_second("/v1/me", &other.token)
        .await;
    // Listening again, it remembers again.
    let third = app.sign_up_user(tenant.tenant_id, "Third User").await;
    wait_until("the cache to be in use again", || async {
        let before = hits(&app).await;
        for _ in 0..2 {
            let _ = app.query("/v1/me", Some(&third.token), None).await;
        }
        hits(&app).await > before
    })
    .await;
}
