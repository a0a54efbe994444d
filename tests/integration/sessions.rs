use chrono::Utc;
use domain::Role;
use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn login_issues_a_short_lived_access_token_and_a_refresh_token_bound_to_a_session() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Login").await;
    let login = app
        .log_in(tenant.tenant_id, &tenant.admin_email, PASSWORD)
        .await;
    assert_eq!(login.status, StatusCode::CREATED);
    assert_eq!(login.str("token_type"), "Bearer");
    assert_eq!(login.body["expires_in"], 900);
    assert!(login.body["position"].as_i64().is_some());
    let session_id = login.id("session_id");
    assert_eq!(app.stream_types(session_id).await, ["user.logged_in"]);
    let row = app
        .db
        .query_one(
            "SELECT refresh_token_hash, tenant_id, user_id, EXTRACT(EPOCH FROM expires_at - created_at)::bigint
               FROM auth_sessions WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .expect("session row");
    // The session belongs to the user who logged in, in their tenant, for the refresh
    // token's lifetime; the refresh token names the session.
    assert_eq!(row.get::<_, uuid::Uuid>(1), tenant.tenant_id);
    assert_eq!(row.get::<_, uuid::Uuid>(2), tenant.admin_id);
    assert_eq!(
        row.get::<_, i64>(3),
        app.settings.refresh_token_ttl_seconds,
        "the session lasts as long as its refresh token"
    );
    let refresh = login.str("refresh_token");
    assert_eq!(
        infra::auth::refresh_token_session(&refresh),
        Some(session_id),
        "the refresh token names its session"
    );
    // The access token is bound to the same session and user.
    let claims = app
        .tokens(chrono::Duration::minutes(15))
        .await
        .verify_access_token(&login.str("access_token"))
        .await
        .expect("a valid access token");
    assert_eq!(claims.sid, session_id);
    assert_eq!(claims.sub, tenant.admin_id);
    assert_eq!(claims.tid, tenant.tenant_id);
    // What is stored is the SHA-256 of the token, not the token in any encoding.
    let stored = String::from_utf8(row.get::<_, Vec<u8>>(0)).expect("a hex digest");
    let digest: String = Sha256::digest(refresh.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(stored, digest, "refresh tokens are stored as their hash");
    let secret_part = refresh.split_once('.').map(|(_, s)| s).unwrap_or_default();
    assert!(!stored.contains(secret_part) && !stored.contains(&refresh));
    let table = app
        .db
        .query("SELECT s::text FROM auth_sessions s", &[])
        .await
        .expect("dump");
    assert!(
        table
            .iter()
            .all(|r| !r.get::<_, String>(0).contains(secret_part)),
        "the token's secret is nowhere in the sessions table"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_recorded_as_a_failed_login() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Failed").await;
    let answer = app
        .log_in(
            tenant.tenant_id,
            &tenant.admin_email,
            "not the password at all",
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.is_problem());
    assert_eq!(
        app.stream_types(tenant.admin_id).await,
        ["user.created", "tenant.member_joined", "user.login_failed"]
    );

    let before = app.event_count().await;
    let unknown = app
        .log_in(tenant.tenant_id, "nobody@example.com", PASSWORD)
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.body["detail"], answer.body["detail"],
        "unknown emails are not revealed"
    );
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn refresh_rotates_the_token_and_a_reused_token_closes_the_session() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Refresh").await;
    let user = app.sign_up_user(tenant.tenant_id, "Rotating User").await;

    let first = app.refresh(&user.refresh_token).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.id("session_id"), user.session_id);
    let rotated = first.str("refresh_token");
    assert_ne!(rotated, user.refresh_token);
    let fresh_token = first.str("access_token");
    assert_eq!(
        app.update_me(&fresh_token, json!({"locale": "de-CH"}))
            .await
            .status,
        StatusCode::OK
    );

    // The old token again: someone else has it. The whole session ends.
    let replay = app.refresh(&user.refresh_token).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.stream_types(user.session_id).await,
        [
            "user.logged_in",
            "user.session_refreshed",
            "user.session_revoked"
        ]
    );
    let after = app.refresh(&rotated).await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "the rotated token died with its session"
    );
    assert_eq!(
        app.update_me(&fresh_token, json!({"locale": "fr"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn malformed_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    for token in [
        "",
        "x",
        "not.a.token",
        "00000000000000000000000000000000.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let answer = app.refresh(token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token}");
        assert!(answer.is_problem());
    }
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn logging_out_ends_the_session_on_the_next_request() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Logout").await;
    let user = app.sign_up_user(tenant.tenant_id, "Leaving User").await;
    // The query API has authenticated the session (and remembers it).
    let before = app.query("/v1/me", Some(&user.token), None).await;
    assert_ne!(before.status, StatusCode::UNAUTHORIZED);
    let answer = app.revoke_session(user.session_id, &user.token).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    // The very next command is refused; the query API forgets the session within a second.
    let after = app.update_me(&user.token, json!({"locale": "en"})).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;
    let refresh = app.refresh(&user.refresh_token).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_admin_may_end_a_members_session_but_a_member_may_not_end_anothers() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Revoke").await;
    let alice = app.sign_up_user(tenant.tenant_id, "Alice").await;
    let bob = app.sign_up_user(tenant.tenant_id, "Bob").await;

    let by_member = app.revoke_session(alice.session_id, &bob.token).await;
    assert_eq!(by_member.status, StatusCode::NOT_FOUND);
    assert!(by_member.is_problem());

    let by_admin = app
        .revoke_session(alice.session_id, &tenant.admin_token)
        .await;
    assert_eq!(by_admin.status, StatusCode::NO_CONTENT);
    let reason: String = app
        .db
        .query_one(
            "SELECT data->>'reason' FROM events WHERE aggregate_id = $1 AND type = 'user.session_revoked'",
            &[&alice.session_id],
        )
        .await
        .expect("revocation")
        .get(0);
    assert_eq!(reason, "revoked_by_admin");
    assert_eq!(
        app.update_me(&alice.token, json!({"locale": "en"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = app
        .revoke_session(uuid::Uuid::new_v4(), &tenant.admin_token)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn missing_malformed_forged_and_expired_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Tokens").await;
    let body = json!({"display_name": "Mallory"});
    // Signed by a key nobody registered (an attacker's own), naming it or the real kid.
    let forged = forged_token(tenant.admin_id, tenant.tenant_id, None);
    let forged_kid = forged_token(
        tenant.admin_id,
        tenant.tenant_id,
        Some(app.signing_key().kid().to_owned()),
    );
    let expired = app
        .expired_token(tenant.admin_id, tenant.tenant_id, Role::Admin)
        .await;
    // The old shared-secret kind, and one claiming no algorithm at all.
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "eventra", "aud": "eventra-api", "sub": tenant.admin_id,
                "tid": tenant.tenant_id, "sid": uuid::Uuid::new_v4(), "role": "admin",
                "iat": Utc::now().timestamp(), "exp": Utc::now().timestamp() + 300}),
        &jsonwebtoken::EncodingKey::from_secret(b"any secret at all"),
    )
    .expect("token");
    let unsigned = {
        let mut parts = hs256.split('.');
        let _ = parts.next();
        format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            parts.next().expect("claims")
        )
    };
    let before = app.event_count().await;
    for token in [
        None,
        Some("garbage"),
        Some(forged.as_str()),
        Some(forged_kid.as_str()),
        Some(expired.as_str()),
        Some(hs256.as_str()),
        Some(unsigned.as_str()),
    ] {
        let answer = app.patch("/v1/me", token, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(answer.is_problem());
        assert_eq!(
            answer
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or("")),
            Some("Bearer")
        );
    }
    let wrong_scheme = app
        .send(
            app.http
                .patch(format!("{}/v1/me", app.address))
                .header("authorization", format!("Basic {}", tenant.admin_token))
                .json(&body),
        )
        .await;
    assert_eq!(wrong_scheme.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_user_updates_their_profile_and_an_unchanged_update_appends_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Profile").await;
    let user = app.sign_up_user(tenant.tenant_id, "Profile User").await;
    let update = app
        .update_me(
            &user.token,
            json!({"display_name": "Renamed", "phone": "+4915112345678", "locale": "de-CH"}),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{:?}", update.body);
    assert_eq!(update.id("user_id"), user.user_id);
    assert_eq!(update.body["version"], 3);
    let position = update.body["position"].as_i64().expect("position");

    let same = app
        .update_me(&user.token, json!({"display_name": "Renamed"}))
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["version"], 3);
    assert_eq!(same.body["position"].as_i64(), Some(position));

    let cleared = app.update_me(&user.token, json!({"phone": null})).await;
    assert_eq!(cleared.body["version"], 4);
    let data: serde_json::Value = app
        .db
        .query_one(
            "SELECT data FROM events WHERE aggregate_id = $1 AND sequence = 4",
            &[&user.user_id],
        )
        .await
        .expect("event")
        .get(0);
    assert_eq!(data["changed"], json!(["phone"]));
    assert_eq!(data["phone"], serde_json::Value::Null, "cleared: {data}");

    let empty = app.update_me(&user.token, json!({})).await;
    assert_eq!(
        empty.status,
        StatusCode::OK,
        "an empty merge patch changes nothing"
    );
    assert_eq!(empty.body["version"], 4);
    for (body, status) in [
        (json!({"phone": "12345"}), StatusCode::BAD_REQUEST),
        (json!({"locale": "not a locale"}), StatusCode::BAD_REQUEST),
        (json!({"display_name": ""}), StatusCode::BAD_REQUEST),
        (json!({"email": "x@example.com"}), StatusCode::BAD_REQUEST),
        (json!({"display_name": 42}), StatusCode::BAD_REQUEST),
    ] {
        let answer = app.patch("/v1/me", Some(&user.token), body.clone()).await;
        assert_eq!(answer.status, status, "{body}");
        assert!(answer.is_problem(), "{body}");
    }
    assert_eq!(app.stream_types(user.user_id).await.len(), 4);
}

/// Refreshes count against their session, not their client's address: users behind one
/// address refresh independently, and one session that refreshes in a loop is stopped
/// alone. Refreshes that fail spend the address's anonymous budget, and once it is spent the
/// address's refreshes are refused before any work.
#[tokio::test]
async fn refreshes_are_limited_per_session_and_failed_ones_per_client() {
    let app = TestApp::spawn_with(|s| {
        s.traffic.anonymous_per_hour = 10;
        s.traffic.refresh_per_session_per_hour = 4;
    })
    .await;
    // Two anonymous requests each: the tenant's sign-up and its admin's login.
    let tenant = app.sign_up_tenant("Refreshing").await;
    let mut refresh_tokens = Vec::new();
    // Three more logins: five of the address's ten.
    for _ in 0..3 {
        let login = app
            .log_in(tenant.tenant_id, &tenant.admin_email, PASSWORD)
            .await;
        assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.body);
        refresh_tokens.push(login.str("refresh_token"));
    }
    let refresh = |token: String| {
        app.post(
            "/v1/sessions/refresh",
            None,
            json!({"refresh_token": token}),
        )
    };
    // Ten refreshes from one address whose anonymous budget has five left.
    for round in 0..3 {
        for token in &mut refresh_tokens {
            let answer = refresh(token.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "round {round}: {:?}",
                answer.body
            );
            *token = answer.str("refresh_token");
        }
    }
    for token in &mut refresh_tokens[..1] {
        let answer = refresh(token.clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        *token = answer.str("refresh_token");
    }
    // The first session's fifth refresh is over its share; the others are not touched.
    let over = refresh(refresh_tokens[0].clone()).await;
    assert_eq!(
        over.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        over.body
    );
    assert_eq!(over.body["type"], "urn:eventra:problem:rate-limited");
    assert!(over.headers.contains_key("retry-after"));
    let second = refresh(refresh_tokens[1].clone()).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    refresh_tokens[1] = second.str("refresh_token");

    // Made-up refresh tokens of made-up sessions: the address's five left, then refused.
    for attempt in 0..5 {
        let forged = format!("{}.{}", uuid::Uuid::now_v7(), "A".repeat(43));
        let answer = refresh(forged).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let forged = format!("{}.{}", uuid::Uuid::now_v7(), "A".repeat(43));
    assert_eq!(refresh(forged).await.status, StatusCode::TOO_MANY_REQUESTS);
    // ... and so is a good refresh from that address, before any work: the session's
    // token stays unspent.
    let refused = refresh(refresh_tokens[2].clone()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let rows = app
        .db
        .query_one(
            "SELECT count(*) FROM events WHERE type = 'user.session_refreshed'",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(rows.get::<_, i64>(0), 11);
}

/// A token signed by a fresh key that was never registered, naming `kid` (its own when None).
fn forged_token(user_id: uuid::Uuid, tenant_id: uuid::Uuid, kid: Option<String>) -> String {
    let key = infra::tokens::SigningKey::generate().expect("a key");
    let kid = kid.unwrap_or_else(|| key.kid().to_owned());
    key.sign(
        &kid,
        &json!({"iss": "eventra", "aud": "eventra-api", "sub": user_id, "tid": tenant_id,
                "sid": uuid::Uuid::new_v4(), "role": "admin",
                "iat": Utc::now().timestamp(), "exp": Utc::now().timestamp() + 300}),
    )
    .expect("token")
}
