//! A profile update decides first on the user's state its instance kept from earlier
//! commands, without reading the stream (ADR 33); the decision stands only when its append
//! at the kept version proves that state current. Behind another instance's writes, the
//! stale state is never what an answer rests on: the command decides again on the stream.

use integration_tests::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// The command APIs' counts of decisions on kept states: (proven, unproven).
async fn kept_decisions(app: &TestApp) -> (u64, u64) {
    let text = app.metrics(&app.address).await;
    let count = |result: &str| {
        text.lines()
            .find(|line| {
                line.starts_with(&format!(
                    "eventra_kept_state_decisions_total{{result=\"{result}\"}}"
                ))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .map_or(0, |value| value as u64)
    };
    (count("proven"), count("unproven"))
}

/// The user's stream as `(sequence, the locale its profile update set)`, and its end.
async fn stream_of(app: &TestApp, user_id: Uuid) -> (Vec<Option<String>>, i64, i64) {
    let rows = app
        .db
        .query(
            "SELECT sequence, position, type, data->>'locale' FROM events
              WHERE aggregate_id = $1 ORDER BY sequence",
            &[&user_id],
        )
        .await
        .expect("stream");
    let locales = rows
        .iter()
        .filter(|row| row.get::<_, String>(2) == "user.profile_updated")
        .map(|row| row.get::<_, Option<String>>(3))
        .collect();
    let last = rows.last().expect("a stream");
    (locales, last.get(0), last.get(1))
}

async fn patch_me(app: &TestApp, base: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let answer = app
        .http
        .patch(format!("{base}/v1/me"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PATCH /v1/me");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_profile_update_on_a_stale_kept_state_decides_again_and_loses_no_update() {
    let app = TestApp::spawn().await;
    let other = app.spawn_command_api(|_| {}).await;
    let tenant = app.sign_up_tenant("Kept").await;
    let user = app.sign_up_user(tenant.tenant_id, "Kept Kim").await;

    // Given this instance keeps the user's state after an update of its own,
    let (status, _) = patch_me(&app, &app.address, &user.token, json!({"locale": "en"})).await;
    assert_eq!(status, StatusCode::OK);
    let (proven, _) = kept_decisions(&app).await;
    let (status, _) = patch_me(&app, &app.address, &user.token, json!({"locale": "de"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        kept_decisions(&app).await.0,
        proven + 1,
        "an update on a current kept state is decided on it"
    );

    // and another instance then changes the locale behind its back,
    let (status, _) = patch_me(&app, &other, &user.token, json!({"locale": "en"})).await;
    assert_eq!(status, StatusCode::OK);

    // when this instance is asked for the locale its stale state already has ("de": by that
    // state nothing to do, by the stream a change),
    let (_, unproven) = kept_decisions(&app).await;
    let (status, body) = patch_me(&app, &app.address, &user.token, json!({"locale": "de"})).await;

    // then it decides again on the stream: the change is appended, and the answer names
    // the stream's real end.
    assert_eq!(status, StatusCode::OK, "{body}");
    let (locales, version, position) = stream_of(&app, user.user_id).await;
    assert_eq!(
        locales.last().cloned().flatten().as_deref(),
        Some("de"),
        "the update was lost: {locales:?}"
    );
    assert_eq!(body["version"], json!(version));
    assert_eq!(body["position"], json!(position));
    assert!(kept_decisions(&app).await.1 > unproven);

    // When the other instance moves the stream again and this one makes a real change on
    // its stale state, the append at the old version is refused by the stream's sequence
    // and the command decides again: the caller sees a plain success, not a conflict.
    let (status, _) = patch_me(&app, &other, &user.token, json!({"locale": "en"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = patch_me(
        &app,
        &app.address,
        &user.token,
        json!({"display_name": "Kim Elsewhere"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (locales, version, _) = stream_of(&app, user.user_id).await;
    assert_eq!(body["version"], json!(version));
    assert_eq!(
        locales.iter().flatten().last().map(String::as_str),
        Some("en"),
        "the other instance's locale stands"
    );
    let name: String = app
        .db
        .query_one(
            "SELECT count(*)::text FROM events WHERE aggregate_id = $1
                AND type = 'user.profile_updated' AND data ? 'display_name'",
            &[&user.user_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(name, "1");
}
