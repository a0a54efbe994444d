//! Webhook registration (ADR 0028), black-box: the secret is shown once and is nowhere else
//! in plaintext, private targets are refused, unknown event types too, a rotation replaces the
//! secret, and nothing a refusal answers changes anything.

use integration_tests::TestApp;
use reqwest::StatusCode;
use serde_json::json;

fn webhooks(tenant_id: uuid::Uuid) -> String {
    format!("/v1/tenants/{tenant_id}/webhooks")
}

#[tokio::test]
async fn an_admin_registers_a_webhook_whose_secret_is_shown_once_and_kept_only_sealed() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Hooks").await;
    let created = app
        .send(
            app.http
                .post(format!("{}{}", app.address, webhooks(tenant.tenant_id)))
                .bearer_auth(&tenant.admin_token)
                .header("Idempotency-Key", "register-1")
                .json(&json!({"url": "http://127.0.0.1:9/hook", "event_types": ["user.created", "user.created", "user.deleted"], "description": "CRM"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let webhook_id = created.id("webhook_id");
    let secret = created.str("secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    assert!(created.body["position"].as_i64().is_some_and(|p| p > 0));
    assert_eq!(
        app.stream_types(webhook_id).await,
        ["webhook.created"],
        "one event"
    );
    let stored = app
        .decrypted_stream("webhook", webhook_id)
        .await
        .remove(0)
        .data;
    assert_eq!(
        stored["event_types"],
        json!(["user.created", "user.deleted"])
    );
    assert_eq!(stored["secret_version"], 1);

    // The secret is in no event, no idempotency record, and sealed in its table.
    let encoded = secret.trim_start_matches("whsec_");
    let everything: String = app
        .db
        .query_one(
            "SELECT (SELECT coalesce(string_agg(e::text, ' '), '') FROM events e)
                 || (SELECT coalesce(string_agg(i::text, ' '), '') FROM idempotency_keys i)
                 || (SELECT coalesce(string_agg(encode(sealed, 'base64'), ' '), '') FROM webhook_secrets)",
            &[],
        )
        .await
        .expect("the tables")
        .get(0);
    assert!(
        !everything.contains(encoded),
        "the secret is stored in plaintext"
    );
    // A replay of the key cannot show it again.
    let replay = app
        .send(
            app.http
                .post(format!("{}{}", app.address, webhooks(tenant.tenant_id)))
                .bearer_auth(&tenant.admin_token)
                .header("Idempotency-Key", "register-1")
                .json(&json!({"url": "http://127.0.0.1:9/hook", "event_types": ["user.created", "user.created", "user.deleted"], "description": "CRM"})),
        )
        .await;
    assert_eq!(replay.status, StatusCode::CONFLICT, "{:?}", replay.body);
    assert!(!replay.body.to_string().contains(encoded));

    // A rotation: a new secret, and only it is kept.
    let path = format!("{}/{webhook_id}", webhooks(tenant.tenant_id));
    let rotated = app
        .post(
            &format!("{path}/rotate-secret"),
            Some(&tenant.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    assert_ne!(rotated.str("secret"), secret);
    let versions: Vec<i64> = app
        .db
        .query(
            "SELECT version FROM webhook_secrets WHERE webhook_id = $1",
            &[&webhook_id],
        )
        .await
        .expect("versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [2]);

    // A change, a change that changes nothing, and the deletion.
    let paused = app
        .patch(&path, Some(&tenant.admin_token), json!({"enabled": false}))
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    let again = app
        .patch(&path, Some(&tenant.admin_token), json!({"enabled": false}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        app.stream_types(webhook_id).await,
        [
            "webhook.created",
            "webhook.secret_rotated",
            "webhook.updated"
        ]
    );
    let deleted = app.delete(&path, Some(&tenant.admin_token)).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let gone = app
        .post(
            &format!("{path}/rotate-secret"),
            Some(&tenant.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.is_problem());
}

#[tokio::test]
async fn private_targets_unknown_types_and_malformed_urls_are_refused_and_change_nothing() {
    // Only the operator's allowance opens loopback: here, none.
    let app = TestApp::spawn_with(|settings| {
        settings.webhook_targets = infra::webhooks::TargetPolicy::default();
    })
    .await;
    let tenant = app.sign_up_tenant("Guarded").await;
    let before = app.event_count().await;
    for (url, types, why) in [
        ("https://127.0.0.1/hook", json!(["*"]), "private"),
        ("https://localhost/hook", json!(["*"]), "private"),
        (
            "https://169.254.169.254/latest/meta-data",
            json!(["*"]),
            "private",
        ),
        ("https://10.1.2.3/hook", json!(["*"]), "private"),
        ("https://[::1]/hook", json!(["*"]), "private"),
        ("https://[::ffff:127.0.0.1]/hook", json!(["*"]), "private"),
        ("http://93.184.216.34/hook", json!(["*"]), "https"),
        (
            "https://user:pw@93.184.216.34/hook",
            json!(["*"]),
            "password",
        ),
        ("ftp://93.184.216.34/hook", json!(["*"]), "https"),
        (
            "https://93.184.216.34/hook",
            json!(["user.nothing"]),
            "event type",
        ),
        ("https://93.184.216.34/hook", json!([]), "event type"),
    ] {
        let answer = app
            .post(
                &webhooks(tenant.tenant_id),
                Some(&tenant.admin_token),
                json!({"url": url, "event_types": types}),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{url}: {:?}",
            answer.body
        );
        assert!(answer.is_problem(), "{url}");
        assert!(
            answer.str("detail").contains(why),
            "{url}: {}",
            answer.str("detail")
        );
    }
    assert_eq!(app.event_count().await, before, "a refusal appends nothing");
    let secrets: i64 = app
        .db
        .query_one("SELECT count(*) FROM webhook_secrets", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(secrets, 0);
    // A public https target is taken.
    let taken = app
        .post(
            &webhooks(tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"url": "https://93.184.216.34/hook", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CREATED, "{:?}", taken.body);
}
