use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn tenant_signup_creates_the_tenant_and_its_admin_in_one_step() {
    let app = TestApp::spawn().await;
    let answer = app
        .post(
            "/v1/tenants",
            None,
            json!({"name": "Acme", "plan": "premium", "admin": {"email": "Ada@Example.com", "password": PASSWORD, "display_name": "Ada"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let tenant_id = answer.id("tenant_id");
    let admin_id = answer.id("admin_user_id");
    let position = answer.body["position"].as_i64().expect("a position");

    assert_eq!(app.stream_types(tenant_id).await, ["tenant.created"]);
    assert_eq!(
        app.stream_types(admin_id).await,
        ["user.created", "tenant.member_joined"]
    );
    let row = app
        .db
        .query_one(
            "SELECT max(position), count(DISTINCT transaction_id), bool_and(metadata->>'actor_id' = $1::text)
               FROM events WHERE tenant_id = $2",
            &[&admin_id.to_string(), &tenant_id],
        )
        .await
        .expect("query");
    assert_eq!(
        row.get::<_, i64>(0),
        position,
        "the answer carries the last position"
    );
    assert_eq!(
        row.get::<_, i64>(1),
        1,
        "all three events were appended in one transaction"
    );
    assert!(row.get::<_, bool>(2), "the new admin is the actor");

    let login = app.log_in(tenant_id, "ada@example.com", PASSWORD).await;
    assert_eq!(
        login.status,
        StatusCode::CREATED,
        "the admin logs in with any case of the email"
    );
}

#[tokio::test]
async fn every_event_carries_the_envelope_of_the_contract() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Envelope").await;
    let store = eventstore::EventStore::new(
        infra::db::pool(&app.database_url, 2).expect("pool"),
        std::sync::Arc::new(infra::crypto::KeyRing::new(
            infra::crypto::MasterKey::from_base64(
                app.settings.master_key.as_ref().expect("key").expose(),
            )
            .expect("key"),
        )),
    );
    // Every stream's events: the tenant's, its admin's, a member's, and their sessions'.
    let member = app.sign_up_user(tenant.tenant_id, "Enveloped").await;
    let failed = app
        .log_in(tenant.tenant_id, &member.email, "a wrong password here")
        .await;
    assert_eq!(failed.status, reqwest::StatusCode::UNAUTHORIZED);
    let events = store.load_all(0, 1000).await.expect("load");
    let types: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "tenant.created",
            "tenant.member_joined",
            "user.created",
            "user.logged_in",
            "user.login_failed"
        ]
        .into(),
        "the events this test covers"
    );
    for event in &events {
        let envelope = event.envelope();
        for field in [
            "id",
            "type",
            "timestamp",
            "version",
            "source",
            "tenantId",
            "data",
            "aggregateId",
            "sequence",
            "position",
            "correlationId",
            "causationId",
        ] {
            assert!(
                !envelope[field].is_null(),
                "{field} is missing from {envelope}"
            );
        }
        assert_eq!(envelope["type"], event.event_type.as_str());
        assert_eq!(envelope["tenantId"], tenant.tenant_id.to_string());
        assert_eq!(envelope["source"], "command-api");
        assert_eq!(envelope["position"], event.position);
        // Events about a person name them; the tenant's own event names its first admin.
        if event.aggregate_type != "tenant" {
            assert!(envelope["userId"].is_string(), "{envelope}");
        }
    }
    let created = events
        .iter()
        .find(|e| e.event_type == "user.created" && e.aggregate_id == tenant.admin_id)
        .expect("the admin's user.created");
    assert_eq!(
        created.envelope()["data"]["email"],
        tenant.admin_email,
        "personal data is decrypted on load"
    );
}

#[tokio::test]
async fn a_user_signs_up_under_an_existing_tenant_as_a_member() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Members").await;
    let answer = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": "grace@example.com", "password": PASSWORD, "display_name": "Grace"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let user_id = answer.id("user_id");
    assert!(answer.body["position"].as_i64().is_some());
    assert_eq!(
        app.stream_types(user_id).await,
        ["user.created", "tenant.member_joined"]
    );
    let role: String = app
        .db
        .query_one(
            "SELECT data->>'role' FROM events WHERE aggregate_id = $1 AND sequence = 2",
            &[&user_id],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(role, "member");
}

#[tokio::test]
async fn signing_up_twice_with_the_same_email_in_another_case_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Unique").await;
    let path = format!("/v1/tenants/{}/users", tenant.tenant_id);
    let first = app
        .post(
            &path,
            None,
            json!({"email": "Lin@Example.com", "password": PASSWORD, "display_name": "Lin"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let before = app.event_count().await;
    let second = app
        .post(
            &path,
            None,
            json!({"email": " lin@EXAMPLE.com ", "password": PASSWORD, "display_name": "Lin 2"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert!(second.is_problem());
    assert_eq!(app.event_count().await, before);

    // Another tenant may have the same address.
    let other = app.sign_up_tenant("Other").await;
    let elsewhere = app
        .post(
            &format!("/v1/tenants/{}/users", other.tenant_id),
            None,
            json!({"email": "lin@example.com", "password": PASSWORD, "display_name": "Lin"}),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::CREATED);
}

#[tokio::test]
async fn signup_under_an_unknown_tenant_is_not_found_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let before = app.event_count().await;
    let answer = app
        .post(
            &format!("/v1/tenants/{}/users", uuid::Uuid::new_v4()),
            None,
            json!({"email": "nobody@example.com", "password": PASSWORD, "display_name": "Nobody"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.is_problem());
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn signup_input_is_validated_with_a_clear_problem() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Validation").await;
    let path = format!("/v1/tenants/{}/users", tenant.tenant_id);
    let before = app.event_count().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD, "display_name": "X"}),
            "email",
        ),
        (
            json!({"email": "a@b", "password": PASSWORD, "display_name": "X"}),
            "email",
        ),
        (
            json!({"email": "short@example.com", "password": "short", "display_name": "X"}),
            "password",
        ),
        (
            json!({"email": "same@example.com", "password": "same@example.com", "display_name": "X"}),
            "password",
        ),
        (
            json!({"email": "blank@example.com", "password": PASSWORD, "display_name": "   "}),
            "display_name",
        ),
        (
            json!({"email": "long@example.com", "password": PASSWORD, "display_name": "x".repeat(101)}),
            "display_name",
        ),
        (
            json!({"email": "ctl@example.com", "password": PASSWORD, "display_name": "a\u{0007}b"}),
            "display_name",
        ),
    ];
    for (body, field) in cases {
        let answer = app.post(&path, None, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer.is_problem(), "{body}");
        assert!(
            answer.str("detail").contains(field),
            "{body} → {}",
            answer.body
        );
    }
    let tenant_cases = [
        json!({"name": "", "admin": {"email": "x@example.com", "password": PASSWORD, "display_name": "X"}}),
        json!({"name": "Acme", "plan": "gold", "admin": {"email": "x@example.com", "password": PASSWORD, "display_name": "X"}}),
        json!({"name": "Acme"}),
    ];
    for body in tenant_cases {
        let answer = app.post("/v1/tenants", None, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer.is_problem());
    }
    assert_eq!(app.event_count().await, before);
}
