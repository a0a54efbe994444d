//! A tenant's settings: who may sign up by themselves, as its admins set it.

use integration_tests::{PASSWORD, Pipeline, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

async fn self_signup(app: &TestApp, tenant_id: Uuid, email: &str) -> integration_tests::Answer {
    app.post(
        &format!("/v1/tenants/{tenant_id}/users"),
        None,
        json!({"email": email, "password": PASSWORD, "display_name": "Stranger"}),
    )
    .await
}

#[tokio::test]
async fn invitation_only_refuses_self_signup_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Closed").await;
    let path = format!("/v1/tenants/{}", tenant.tenant_id);
    let closed = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"signup_policy": "invitation_only"}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{:?}", closed.body);
    assert_eq!(closed.body["signup_policy"], "invitation_only");
    assert_eq!(closed.body["deletion_grace_days"], 30);
    assert_eq!(closed.body["allowed_domains"], json!([]));
    let before = app.event_count().await;
    let refused = self_signup(&app, tenant.tenant_id, "stranger@example.com").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    assert!(refused.is_problem());
    assert_eq!(
        refused.body["detail"],
        "this tenant admits new members by invitation only"
    );
    assert_eq!(app.event_count().await, before, "nothing appended");
    // The same address is not reserved: once the tenant opens, it may sign up.
    let opened = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"signup_policy": "open"}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK);
    let admitted = self_signup(&app, tenant.tenant_id, "stranger@example.com").await;
    assert_eq!(admitted.status, StatusCode::CREATED, "{:?}", admitted.body);
}

#[tokio::test]
async fn email_domain_admits_only_the_allowed_domains_in_any_case() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Domains").await;
    let path = format!("/v1/tenants/{}", tenant.tenant_id);
    let without = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"signup_policy": "email_domain"}),
        )
        .await;
    assert_eq!(
        without.status,
        StatusCode::BAD_REQUEST,
        "a policy with no domain"
    );
    let set = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"signup_policy": "email_domain", "allowed_domains": ["Acme.Example", "acme.example", "b.example"]}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(
        set.body["allowed_domains"],
        json!(["acme.example", "b.example"])
    );
    let admitted = self_signup(&app, tenant.tenant_id, "Grace@ACME.example").await;
    assert_eq!(admitted.status, StatusCode::CREATED, "{:?}", admitted.body);
    for refused in [
        "grace@evil.example",
        "grace@sub.acme.example",
        "grace@acme.example.evil.example",
    ] {
        let answer = self_signup(&app, tenant.tenant_id, refused).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{refused}: {:?}",
            answer.body
        );
    }
    let bad = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"allowed_domains": ["not a domain"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let too_long = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"deletion_grace_days": 3651}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    let unknown = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"signup_policy": "closed"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn members_and_other_tenants_cannot_change_settings_and_nothing_is_appended() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Guarded").await;
    let member = app.sign_up_user(tenant.tenant_id, "Plain Member").await;
    let other = app.sign_up_tenant("Other").await;
    let path = format!("/v1/tenants/{}", tenant.tenant_id);
    let body = json!({"signup_policy": "invitation_only"});
    let before = app.event_count().await;
    let as_member = app.patch(&path, Some(&member.token), body.clone()).await;
    assert_eq!(as_member.status, StatusCode::FORBIDDEN);
    let as_other = app
        .patch(&path, Some(&other.admin_token), body.clone())
        .await;
    assert_eq!(as_other.status, StatusCode::NOT_FOUND);
    let anonymous = app.patch(&path, None, body).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let unchanged = app
        .patch(&path, Some(&tenant.admin_token), json!({"name": "Guarded"}))
        .await;
    assert_eq!(unchanged.status, StatusCode::OK, "{:?}", unchanged.body);
    assert_eq!(app.event_count().await, before, "nothing appended");
}

#[tokio::test]
async fn the_query_api_shows_the_settings_to_admins_and_audits_the_change() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Shown").await;
    let member = app.sign_up_user(tenant.tenant_id, "Curious Member").await;
    let changed = app
        .patch(
            &format!("/v1/tenants/{}", tenant.tenant_id),
            Some(&tenant.admin_token),
            json!({"name": "Shown Renamed", "signup_policy": "email_domain", "allowed_domains": ["shown.example"], "deletion_grace_days": 7}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    let position = changed.body["position"].as_i64().expect("position");
    let path = format!("/v1/tenants/{}", tenant.tenant_id);
    let shown = app
        .query_caught_up(&path, &tenant.admin_token, position)
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
    assert_eq!(shown.body["name"], "Shown Renamed");
    assert_eq!(shown.body["signup_policy"], "email_domain");
    assert_eq!(shown.body["allowed_domains"], json!(["shown.example"]));
    assert_eq!(shown.body["deletion_grace_days"], 7);
    let hidden = app.query(&path, Some(&member.token), None).await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN);
    let audit = app
        .query_caught_up(
            &format!(
                "/v1/tenants/{}/audit?type=tenant.settings_changed",
                tenant.tenant_id
            ),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{:?}", audit.body);
    let items = audit.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["actor_id"], tenant.admin_id.to_string());
    running.stop().await;
    pipeline.finish().await;
}
