use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn malformed_oversized_and_wrongly_typed_requests_get_problems_and_append_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Hostile").await;
    let users = format!("{}/v1/tenants/{}/users", app.address, tenant.tenant_id);
    let before = app.event_count().await;

    let cases: Vec<(reqwest::RequestBuilder, StatusCode)> = vec![
        (app.http.post(&users).header("content-type", "application/json").body("{not json"), StatusCode::BAD_REQUEST),
        (app.http.post(&users).header("content-type", "application/json").body(""), StatusCode::BAD_REQUEST),
        (app.http.post(&users).header("content-type", "application/json").body("[]"), StatusCode::BAD_REQUEST),
        (app.http.post(&users).header("content-type", "application/json").body("null"), StatusCode::BAD_REQUEST),
        (app.http.post(&users).header("content-type", "text/plain").body("{}"), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (app.http.post(&users).body(r#"{"email":"a@example.com"}"#), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            app.http.post(&users).json(&json!({"email": 42, "password": PASSWORD, "display_name": "X"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            app.http
                .post(&users)
                .json(&json!({"email": "a@example.com", "password": PASSWORD, "display_name": "X", "role": "admin"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            app.http.post(&users).json(&json!({"email": "a@example.com", "password": PASSWORD, "display_name": "X".repeat(100_000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            app.http.post(&users).json(&json!({"email": "a@example.com", "password": "p".repeat(10_000), "display_name": "X"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            app.http.post(format!("{}/v1/tenants/not-a-uuid/users", app.address)).json(&json!({})),
            StatusCode::NOT_FOUND,
        ),
        (
            app.http
                .patch(format!("{}/v1/tenants/{}/users/%00", app.address, tenant.tenant_id))
                .bearer_auth(&tenant.admin_token)
                .json(&json!({"role": "admin"})),
            StatusCode::NOT_FOUND,
        ),
        (app.http.put(&users).json(&json!({})), StatusCode::METHOD_NOT_ALLOWED),
        (app.http.get(format!("{}/v1/nothing-here", app.address)), StatusCode::NOT_FOUND),
        (
            app.http.patch(format!("{}/v1/me", app.address)).bearer_auth(&tenant.admin_token).json(&json!({"display_name": null})),
            StatusCode::BAD_REQUEST,
        ),
        (
            app.http.post(format!("{}/v1/tenants/{}/sessions", app.address, tenant.tenant_id)).json(&json!({"email": ["x"], "password": 1})),
            StatusCode::BAD_REQUEST,
        ),
        (
            app.http.post(format!("{}/v1/sessions/refresh", app.address)).json(&json!({"refresh_token": "a".repeat(5000)})),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (request, expected) in cases {
        let answer = app.send(request).await;
        assert_eq!(answer.status, expected, "{:?}", answer.body);
        assert!(
            answer.is_problem(),
            "not a problem document: {:?} {:?}",
            answer.headers,
            answer.body
        );
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn health_answers_without_authentication() {
    let app = TestApp::spawn().await;
    let answer = app
        .request(reqwest::Method::GET, "/health", None, None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"], "ok");
}
