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

fn the_projector_with_webhooks() -> Vec<projector::projections::Projection> {
    let mut projections = projector::projections::Projection::ALL.to_vec();
    projections.push(projector::projections::Projection::WebhookDeliveries);
    projections
}

/// `(status, attempts)` of every delivery of a webhook, oldest first.
async fn deliveries(app: &TestApp, webhook_id: uuid::Uuid) -> Vec<(String, i32, uuid::Uuid)> {
    app.db
        .query(
            "SELECT status, attempts, delivery_id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY seq",
            &[&webhook_id],
        )
        .await
        .expect("deliveries")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[tokio::test]
async fn each_matching_event_arrives_once_signed_in_order_and_an_erased_persons_data_does_not() {
    let receiver = integration_tests::receiver::Receiver::start().await;
    let pipeline = integration_tests::Pipeline::start().await;
    let projector = pipeline.spawn_projector_of(the_projector_with_webhooks());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Receivers").await;
    let created = app
        .post(
            &webhooks(tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"url": receiver.url, "event_types": ["user.created", "user.profile_updated", "user.deleted"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.str("secret");
    let webhook_id = created.id("webhook_id");
    // While the endpoint fails, the deliveries wait; meanwhile one person is erased.
    receiver.answer(503);
    let ada = app.sign_up_user(tenant.tenant_id, "Ada Hooked").await;
    let erin = app.sign_up_user(tenant.tenant_id, "Erin Hooked").await;
    assert_eq!(
        app.update_me(&ada.token, json!({"display_name": "Ada H."}))
            .await
            .status,
        StatusCode::OK
    );
    receiver.wait_for(1, integration_tests::WAIT_LIMIT).await;
    assert_eq!(
        app.erase(&tenant, erin.user_id).await.status,
        StatusCode::OK
    );
    receiver.answer(204);
    // Four events match: two signups, one profile change, one deletion.
    integration_tests::wait_until("every delivery to be delivered", || async {
        let all = deliveries(app, webhook_id).await;
        all.len() == 4 && all.iter().all(|(status, _, _)| status == "delivered")
    })
    .await;
    let received = receiver.received();
    let accepted: Vec<_> = received
        .iter()
        .skip_while(|d| d.webhook_id.is_empty())
        .collect();
    let mut first_seen: Vec<String> = Vec::new();
    for delivered in &received {
        assert!(
            integration_tests::receiver::signature_is_valid(&secret, delivered),
            "a signature does not verify: {delivered:?}"
        );
        let age = chrono::Utc::now().timestamp()
            - delivered.timestamp.parse::<i64>().expect("a timestamp");
        assert!((0..300).contains(&age), "timestamp {}", delivered.timestamp);
        assert!(
            delivered
                .content_type
                .starts_with("application/cloudevents+json")
        );
        if !first_seen.contains(&delivered.webhook_id) {
            first_seen.push(delivered.webhook_id.clone());
        }
    }
    assert!(!accepted.is_empty());
    // Retries carry the same webhook-id; each delivery went in the order of its events.
    let ids: Vec<String> = deliveries(app, webhook_id)
        .await
        .iter()
        .map(|(_, _, id)| id.to_string())
        .collect();
    assert_eq!(
        first_seen, ids,
        "deliveries went out in the order of their events"
    );
    let documents: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            received
                .iter()
                .rev()
                .find(|d| &d.webhook_id == id)
                .expect("delivered")
                .json()
        })
        .collect();
    let types: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "user.created",
            "user.created",
            "user.profile_updated",
            "user.deleted"
        ]
    );
    let mut event_ids: Vec<&str> = documents.iter().filter_map(|d| d["id"].as_str()).collect();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 4, "each event once");
    for document in &documents {
        assert_eq!(document["specversion"], "1.0");
        assert_eq!(document["tenantid"], json!(tenant.tenant_id));
        assert!(
            document["dataschema"]
                .as_str()
                .is_some_and(|s| s.starts_with("https://api.example/v1/schemas/events/"))
        );
        let text = document.to_string();
        assert!(
            !text.contains("password_hash") && !text.contains("$argon2"),
            "{text}"
        );
    }
    let ada_created = &documents[0];
    assert_eq!(ada_created["data"]["email"], json!(ada.email));
    // Erin was erased before her signup was delivered: it arrives without her data.
    let erin_created = &documents[1];
    assert_eq!(
        erin_created["subject"],
        json!(format!("user/{}", erin.user_id))
    );
    assert!(
        erin_created["data"].get("email").is_none(),
        "{erin_created}"
    );
    assert!(!erin_created.to_string().contains("Erin Hooked"));
    // The query API lists the webhook and its deliveries to the admin, never the secret.
    let listed = app
        .query(&webhooks(tenant.tenant_id), Some(&tenant.admin_token), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["items"][0]["webhook_id"], json!(webhook_id));
    assert!(
        !listed
            .body
            .to_string()
            .contains(secret.trim_start_matches("whsec_"))
    );
    let delivered = app
        .query(
            &format!(
                "{}/{webhook_id}/deliveries?status=delivered",
                webhooks(tenant.tenant_id)
            ),
            Some(&tenant.admin_token),
            None,
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    assert_eq!(delivered.body["items"].as_array().map(Vec::len), Some(4));
    // Paged two at a time: every delivery once.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "{}/{webhook_id}/deliveries?limit=2&cursor={c}",
                webhooks(tenant.tenant_id)
            ),
            None => format!(
                "{}/{webhook_id}/deliveries?limit=2",
                webhooks(tenant.tenant_id)
            ),
        };
        let page = app.query(&path, Some(&tenant.admin_token), None).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        for item in page.body["items"].as_array().expect("items") {
            paged.push(item["delivery_id"].clone());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged.len(), 4);
    paged.sort_by_key(|v| v.to_string());
    paged.dedup();
    assert_eq!(paged.len(), 4, "a delivery on two pages");
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_growing_gaps_then_dead_and_retried_from_the_api() {
    let receiver = integration_tests::receiver::Receiver::start().await;
    let mut pipeline = integration_tests::Pipeline::start().await;
    pipeline.settings.webhooks.max_attempts = 3;
    pipeline.settings.webhooks.retry_base = std::time::Duration::from_millis(300);
    let projector = pipeline.spawn_projector_of(the_projector_with_webhooks());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Failing").await;
    let created = app
        .post(
            &webhooks(tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"url": receiver.url, "event_types": ["user.created"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let webhook_id = created.id("webhook_id");
    receiver.answer(500);
    app.sign_up_user(tenant.tenant_id, "Failed Once").await;
    integration_tests::wait_until("the delivery to be dead", || async {
        deliveries(app, webhook_id)
            .await
            .first()
            .is_some_and(|(status, _, _)| status == "dead")
    })
    .await;
    let (_, attempts, delivery_id) = deliveries(app, webhook_id).await.remove(0);
    assert_eq!(attempts, 3);
    let starts: Vec<chrono::DateTime<chrono::Utc>> = app
        .db
        .query(
            "SELECT started_at FROM webhook_delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
            &[&delivery_id],
        )
        .await
        .expect("attempts")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(starts.len(), 3);
    // Each wait is at least half its step: 300 ms, then 600 ms.
    for (index, pair) in starts.windows(2).enumerate() {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        let step = 300 << index;
        assert!(gap >= step / 2, "gap {index} was {gap} ms");
    }
    let failed = receiver.received();
    assert_eq!(failed.len(), 3);
    assert!(
        failed
            .iter()
            .all(|d| d.webhook_id == delivery_id.to_string())
    );
    let dead = app
        .query(
            &format!(
                "{}/{webhook_id}/deliveries?status=dead",
                webhooks(tenant.tenant_id)
            ),
            Some(&tenant.admin_token),
            None,
        )
        .await;
    assert_eq!(dead.body["items"][0]["last_status"], 500);
    assert_eq!(
        dead.body["items"][0]["last_error"],
        "the endpoint answered 500"
    );

    // Fixed, and retried from the API: delivered, with the same webhook-id.
    receiver.answer(200);
    let retry = format!(
        "{}/{webhook_id}/deliveries/{delivery_id}/retry",
        webhooks(tenant.tenant_id)
    );
    let member = app.sign_up_user(tenant.tenant_id, "Not Admin").await;
    assert_eq!(
        app.post(&retry, Some(&member.token), json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let retried = app.post(&retry, Some(&tenant.admin_token), json!({})).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{:?}", retried.body);
    integration_tests::wait_until("the retried delivery to arrive", || async {
        deliveries(app, webhook_id)
            .await
            .first()
            .is_some_and(|(status, _, _)| status == "delivered")
    })
    .await;
    let same: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|d| d.webhook_id == delivery_id.to_string())
        .collect();
    assert_eq!(
        same.len(),
        4,
        "three failed attempts and the retried one, one webhook-id"
    );
    // An operator sees the same from the command line, and sends dead ones again there.
    receiver.answer(500);
    app.sign_up_user(tenant.tenant_id, "Failed Twice").await;
    integration_tests::wait_until("the second delivery to be dead", || async {
        deliveries(app, webhook_id)
            .await
            .iter()
            .filter(|(status, _, _)| status == "dead")
            .count()
            == 1
            && deliveries(app, webhook_id).await.len() >= 3
    })
    .await;
    let (ok, stdout, stderr) = crate::cli::run(
        &pipeline,
        "projector",
        &["webhook-deliveries", "list", "--status", "dead"],
    );
    assert!(ok, "{stderr}");
    let listed: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(listed.len(), 1, "{stdout}");
    assert_eq!(listed[0]["last_status"], 500);
    receiver.answer(204);
    let (ok, stdout, stderr) = crate::cli::run(
        &pipeline,
        "projector",
        &["webhook-deliveries", "retry", "--all-dead"],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 delivery(ies) queued again"), "{stdout}");
    integration_tests::wait_until("every delivery to be delivered", || async {
        deliveries(app, webhook_id)
            .await
            .iter()
            .all(|(status, _, _)| status == "delivered")
    })
    .await;
    let again = app.post(&retry, Some(&tenant.admin_token), json!({})).await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "a delivered one is not retried"
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_target_the_projectors_guard_refuses_gets_nothing_and_the_delivery_is_dead() {
    let receiver = integration_tests::receiver::Receiver::start().await;
    let mut pipeline = integration_tests::Pipeline::start().await;
    // The command API allowed loopback at registration; the sender's guard does not.
    pipeline.settings.webhooks.targets = infra::webhooks::TargetPolicy::default();
    let projector = pipeline.spawn_projector_of(the_projector_with_webhooks());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Rebound").await;
    let created = app
        .post(
            &webhooks(tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"url": receiver.url, "event_types": ["user.created"]}),
        )
        .await;
    let webhook_id = created.id("webhook_id");
    app.sign_up_user(tenant.tenant_id, "Never Sent").await;
    integration_tests::wait_until("the delivery to be dead", || async {
        deliveries(app, webhook_id)
            .await
            .first()
            .is_some_and(|(status, _, _)| status == "dead")
    })
    .await;
    assert!(
        receiver.received().is_empty(),
        "the private target was called"
    );
    let why: String = app
        .db
        .query_one(
            "SELECT last_error FROM webhook_deliveries WHERE webhook_id = $1",
            &[&webhook_id],
        )
        .await
        .expect("the delivery")
        .get(0);
    assert!(
        why.contains("target refused") && why.contains("private"),
        "{why}"
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn every_event_reaches_the_endpoint_under_one_webhook_id_across_projector_sigkills() {
    use std::sync::Arc;
    let receiver = integration_tests::receiver::Receiver::start().await;
    let pipeline = Arc::new(integration_tests::Pipeline::start().await);
    let tenant = pipeline.app.sign_up_tenant("Killed").await;
    let created = pipeline
        .app
        .post(
            &webhooks(tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"url": receiver.url, "event_types": ["user.created"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let secret = created.str("secret");
    let webhook_id = created.id("webhook_id");
    // Signups stream in the whole time.
    let (stop_writing, writing) = tokio::sync::watch::channel(false);
    let writer = {
        let pipeline = Arc::clone(&pipeline);
        let tenant_id = tenant.tenant_id;
        tokio::spawn(async move {
            let mut n = 0;
            while !*writing.borrow() && n < 500 {
                pipeline
                    .app
                    .sign_up_user(tenant_id, &format!("Signed {n}"))
                    .await;
                n += 1;
            }
            n
        })
    };
    for _ in 0..3 {
        let mut projector =
            crate::faults::start_projector_process(&pipeline, crate::faults::free_port());
        let before = receiver.received().len();
        integration_tests::wait_until("the endpoint to get more", || async {
            receiver.received().len() > before + 2
        })
        .await;
        projector.kill().expect("SIGKILL the projector");
        let _ = projector.wait();
    }
    let _ = stop_writing.send(true);
    let signups = writer.await.expect("the writer");
    let _projector = crate::faults::projector_process(&pipeline);
    integration_tests::wait_until("every delivery to be delivered", || async {
        let all = deliveries(&pipeline.app, webhook_id).await;
        all.len() == signups && all.iter().all(|(status, _, _)| status == "delivered")
    })
    .await;
    // Every signup arrived; an event that came twice (a worker killed after the endpoint
    // answered) came under one webhook-id, and every signature verifies.
    let received = receiver.received();
    let mut by_event: std::collections::HashMap<String, std::collections::BTreeSet<String>> =
        std::collections::HashMap::new();
    for delivered in &received {
        assert!(integration_tests::receiver::signature_is_valid(
            &secret, delivered
        ));
        let event_id = delivered.json()["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        by_event
            .entry(event_id)
            .or_default()
            .insert(delivered.webhook_id.clone());
    }
    assert_eq!(by_event.len(), signups, "every signup arrived");
    assert!(
        by_event.values().all(|ids| ids.len() == 1),
        "an event came under two webhook-ids"
    );
}
