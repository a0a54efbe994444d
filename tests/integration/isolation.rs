use integration_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn another_tenants_admin_gets_not_found_on_every_endpoint_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let victim = app.sign_up_tenant("Victim").await;
    let member = app.sign_up_user(victim.tenant_id, "Target").await;
    let attacker = app.sign_up_tenant("Attacker").await;
    let before = app.event_count().await;

    let target = format!("/v1/tenants/{}/users/{}", victim.tenant_id, member.user_id);
    // The victim's user addressed under the attacker's own tenant path.
    let smuggled = format!(
        "/v1/tenants/{}/users/{}",
        attacker.tenant_id, member.user_id
    );
    let requests = [
        (
            Method::PATCH,
            target.clone(),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::PATCH,
            target.clone(),
            Some(json!({"status": "deactivated"})),
        ),
        (Method::DELETE, target.clone(), None),
        (
            Method::PATCH,
            smuggled.clone(),
            Some(json!({"status": "deactivated"})),
        ),
        (Method::DELETE, smuggled.clone(), None),
        (
            Method::DELETE,
            format!("/v1/sessions/{}", member.session_id),
            None,
        ),
    ];
    for (method, path, body) in requests {
        let answer = app
            .request(method.clone(), &path, Some(&attacker.admin_token), body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {:?}",
            answer.body
        );
        assert!(answer.is_problem());
    }
    assert_eq!(app.event_count().await, before);
    // The member still works.
    assert_eq!(
        app.patch("/v1/me", Some(&member.token), json!({"locale": "en"}))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_of_one_tenant_cannot_act_through_another_tenants_path() {
    let app = TestApp::spawn().await;
    let first = app.sign_up_tenant("First").await;
    let second = app.sign_up_tenant("Second").await;
    let path = format!("/v1/tenants/{}/users/{}", second.tenant_id, second.admin_id);
    let answer = app
        .patch(&path, Some(&first.admin_token), json!({"role": "member"}))
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = app.delete(&path, Some(&first.admin_token)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}
