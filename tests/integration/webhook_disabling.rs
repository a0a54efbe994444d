//! A webhook whose endpoint fails every attempt for longer than `WEBHOOK_DISABLE_AFTER_HOURS`
//! is turned off by the system, once (`webhook.disabled`), each admin of the tenant is told
//! in their language, nothing more is attempted, and an admin turning it on again gets the
//! waiting events delivered.

use std::time::Duration;

use integration_tests::{Pipeline, wait_until};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_webhook_failing_too_long_is_turned_off_once_its_admins_are_told_and_it_resumes_when_turned_on()
 {
    let receiver = integration_tests::receiver::Receiver::start().await;
    let (mut pipeline, smtp) = Pipeline::start_with_mail().await;
    pipeline.settings.webhooks.max_attempts = 3;
    pipeline.settings.webhooks.retry_base = Duration::from_millis(150);
    pipeline.settings.webhooks.retry_max = Duration::from_millis(300);
    pipeline.settings.webhooks.disable_after = Duration::from_millis(800);
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Hooked").await;
    // A second admin who reads German, and a member who is told nothing.
    let second = app.sign_up_user(tenant.tenant_id, "Zweite").await;
    let promoted = app
        .patch(
            &format!("/v1/tenants/{}/users/{}", tenant.tenant_id, second.user_id),
            Some(&tenant.admin_token),
            json!({"role": "admin", "locale": "de-DE"}),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{promoted:?}");
    let member = app.sign_up_user(tenant.tenant_id, "Member").await;

    let hooks = format!("/v1/tenants/{}/webhooks", tenant.tenant_id);
    let created = app
        .post(
            &hooks,
            Some(&tenant.admin_token),
            json!({"url": receiver.url, "event_types": ["user.created"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let webhook_id = created.id("webhook_id");
    receiver.answer(500);
    for n in 0..6 {
        app.sign_up_user(tenant.tenant_id, &format!("Waiting {n}"))
            .await;
    }

    // Off, by the system, once.
    let listed = || async {
        app.query(&hooks, Some(&tenant.admin_token), None)
            .await
            .body["items"][0]
            .clone()
    };
    wait_until("the webhook to be turned off", || async {
        listed().await["enabled"] == false
    })
    .await;
    let view = listed().await;
    let reason = view["disabled_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with("every attempt failed since ") && reason.contains("answered 500"),
        "{view}"
    );
    let disabled = app
        .db
        .query(
            "SELECT metadata->>'source', metadata->>'actor_id', data FROM events
              WHERE aggregate_id = $1 AND type = 'webhook.disabled'",
            &[&webhook_id],
        )
        .await
        .expect("events");
    assert_eq!(disabled.len(), 1, "disabled once");
    assert_eq!(disabled[0].get::<_, String>(0), "eventra-webhooks");
    assert_eq!(
        disabled[0].get::<_, Option<String>>(1),
        None,
        "by the system"
    );
    let data: serde_json::Value = disabled[0].get(2);
    assert_eq!(data["reason"], "failing");
    assert_eq!(data["last_error"], "the endpoint answered 500");

    // Nothing more is attempted while it is off.
    let attempts = || async {
        app.db
            .query_one(
                "SELECT count(*) FROM webhook_delivery_attempts a
                   JOIN webhook_deliveries d USING (delivery_id) WHERE d.webhook_id = $1",
                &[&webhook_id],
            )
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    let before = attempts().await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(attempts().await, before, "no attempt while off");

    // Each admin is told, in their language; the member is not.
    let subject_of = |mails: Vec<integration_tests::smtp::Received>, start: &str| {
        mails
            .into_iter()
            .filter(|mail| mail.subject().starts_with(start))
            .collect::<Vec<_>>()
    };
    wait_until("both admins to be told", || async {
        !subject_of(smtp.received_by(&tenant.admin_email), "A webhook of").is_empty()
            && !subject_of(smtp.received_by(&second.email), "Ein Webhook von").is_empty()
    })
    .await;
    let english = subject_of(smtp.received_by(&tenant.admin_email), "A webhook of");
    assert_eq!(english.len(), 1);
    let text = english[0].text();
    assert!(text.contains("turned off"), "{text}");
    assert!(text.contains("the endpoint answered 500"), "{text}");
    // The address a tenant admin typed is shown defanged, never as a live link.
    assert!(text.contains("127[.]0[.]0[.]1"), "{text}");
    assert!(!text.contains(&receiver.url), "{text}");
    let german = subject_of(smtp.received_by(&second.email), "Ein Webhook von");
    assert!(german[0].text().contains("abgeschaltet"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        smtp.received_by(&member.email)
            .iter()
            .all(|mail| !mail.subject().contains("ebhook")),
        "the member is not told"
    );

    // Fixed and turned on again: the next events are delivered (dead deliveries wait for an
    // admin's retry), failures are counted afresh, and the reason is gone.
    receiver.answer(204);
    let on = app
        .patch(
            &format!("{hooks}/{webhook_id}"),
            Some(&tenant.admin_token),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{on:?}");
    app.sign_up_user(tenant.tenant_id, "After").await;
    wait_until("a delivery after turning it on", || async {
        app.db
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'delivered'",
                &[&webhook_id],
            )
            .await
            .expect("count")
            .get::<_, i64>(0)
            > 0
    })
    .await;
    let view = listed().await;
    assert_eq!(view["enabled"], true);
    assert!(view["disabled_reason"].is_null(), "{view}");
    projector.stop().await;
    pipeline.finish().await;
}
