use domain::Role;
use integration_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn another_tenants_admin_gets_not_found_on_member_and_session_commands_and_changes_nothing() {
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
        app.update_me(&member.token, json!({"locale": "en"}))
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

/// A request body the matrix sends to an operation that takes one: valid, so that a refusal
/// comes from who is asking, never from what was sent.
fn valid_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("patch", "/v1/me") => Some(json!({"locale": "en"})),
        ("patch", "/v1/tenants/{tenant_id}/users/{user_id}") => Some(json!({"role": "admin"})),
        ("patch", "/v1/tenants/{tenant_id}") => Some(json!({"signup_policy": "invitation_only"})),
        // A wrong password: the refusal (403 for the member) must change nothing.
        ("post", "/v1/me/password") => Some(
            json!({"current_password": "not the password at all", "new_password": "a brand new passphrase"}),
        ),
        // Refused before the file is read (a member, another tenant, no token).
        ("post", "/v1/tenants/{tenant_id}/imports") => Some(json!("email,display_name\n")),
        ("post", "/v1/me/email") => Some(
            json!({"new_email": "moved@matrix.example", "password": "not the password at all"}),
        ),
        ("delete", "/v1/me") | ("post", "/v1/me/deactivate") => {
            Some(json!({"password": "not the password at all"}))
        }
        ("post", "/v1/tenants/{tenant_id}/invitations") => {
            Some(json!({"email": "invitee@matrix.example"}))
        }
        ("post", "/v1/tenants/{tenant_id}/invitations/{invitation_id}/resend") => Some(json!({})),
        ("post", "/v1/tenants/{tenant_id}/teams") => Some(json!({"name": "Matrix"})),
        ("patch", "/v1/tenants/{tenant_id}/teams/{team_id}") => Some(json!({"name": "Renamed"})),
        ("post", "/v1/tenants/{tenant_id}/webhooks") => {
            Some(json!({"url": "http://127.0.0.1:9/matrix", "event_types": ["user.created"]}))
        }
        ("patch", "/v1/tenants/{tenant_id}/webhooks/{webhook_id}") => {
            Some(json!({"enabled": false}))
        }
        ("post", "/v1/tenants/{tenant_id}/teams/{team_id}/members") => {
            Some(json!({"user_ids": [Uuid::nil()]}))
        }
        _ => None,
    }
}

/// One documented operation, with its parameters filled in.
struct Call<'a> {
    app: &'a TestApp,
    method: &'a str,
    path: &'a str,
    url: String,
}

impl Call<'_> {
    /// Sends the operation with `token` and checks it is refused with `status` as a problem;
    /// returns what was checked.
    async fn expect(&self, who: &str, token: Option<String>, status: StatusCode) -> String {
        let (method, path) = (self.method, self.path);
        let mut request = self.app.http.request(
            method.to_uppercase().parse().expect("method"),
            self.url.as_str(),
        );
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = valid_body(method, path) {
            request = request.json(&body);
        }
        let answer = self.app.send(request).await;
        assert_eq!(
            answer.status, status,
            "{method} {path} as {who}: {:?}",
            answer.body
        );
        assert!(answer.is_problem(), "{method} {path} as {who}");
        format!("{method} {path} as {who}: {status}")
    }
}

/// Whether an operation requires a bearer token, by its document.
fn needs_token(operation: &Value) -> bool {
    operation["security"]
        .as_array()
        .is_some_and(|schemes| schemes.iter().any(|s| s.get("bearer").is_some()))
}

#[tokio::test]
async fn every_documented_operation_refuses_other_tenants_members_and_bad_tokens() {
    let app = TestApp::spawn().await;
    let victim = app.sign_up_tenant("Victim").await;
    let member = app.sign_up_user(victim.tenant_id, "Member").await;
    let target = app.sign_up_user(victim.tenant_id, "Target").await;
    let outsider = app.sign_up_tenant("Outsider").await;
    let logged_out = app.sign_up_user(victim.tenant_id, "Logged Out").await;
    let logout = app
        .revoke_session(logged_out.session_id, &logged_out.token)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let expired = app
        .expired_token(victim.admin_id, victim.tenant_id, Role::Admin)
        .await;
    let team = app
        .post(
            &format!("/v1/tenants/{}/teams", victim.tenant_id),
            Some(&victim.admin_token),
            json!({"name": "Victims"}),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{:?}", team.body);
    let invitation = app
        .post(
            &format!("/v1/tenants/{}/invitations", victim.tenant_id),
            Some(&victim.admin_token),
            json!({"email": "invited@victim.example"}),
        )
        .await;
    assert_eq!(
        invitation.status,
        StatusCode::CREATED,
        "{:?}",
        invitation.body
    );
    let import = app
        .send(
            app.http
                .post(format!(
                    "{}/v1/tenants/{}/imports",
                    app.address, victim.tenant_id
                ))
                .bearer_auth(&victim.admin_token)
                .header("Content-Type", "text/csv")
                .body("email,display_name\nimported@victim.example,Imported\n"),
        )
        .await;
    assert_eq!(import.status, StatusCode::ACCEPTED, "{:?}", import.body);
    let import_id = import.id("import_id");
    let webhook = app
        .post(
            &format!("/v1/tenants/{}/webhooks", victim.tenant_id),
            Some(&victim.admin_token),
            json!({"url": "http://127.0.0.1:9/victim", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(webhook.status, StatusCode::CREATED, "{:?}", webhook.body);
    let before = app.event_count().await;

    let mut checked = Vec::new();
    for base in [&app.address, &app.query_address] {
        let document = app
            .send(app.http.get(format!("{base}/openapi.json")))
            .await
            .body;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                if !needs_token(operation) {
                    continue;
                }
                let documents = |status: &str| operation["responses"].get(status).is_some();
                let mut concrete = path.clone();
                for (parameter, value) in [
                    ("{tenant_id}", victim.tenant_id),
                    ("{user_id}", target.user_id),
                    ("{session_id}", target.session_id),
                    ("{team_id}", team.id("team_id")),
                    ("{invitation_id}", invitation.id("invitation_id")),
                    ("{import_id}", import_id),
                    ("{webhook_id}", webhook.id("webhook_id")),
                    ("{delivery_id}", Uuid::new_v4()),
                ] {
                    concrete = concrete.replace(parameter, &value.to_string());
                }
                assert!(
                    !concrete.contains('{'),
                    "{method} {path}: the matrix cannot fill this path's parameters; teach it"
                );
                assert!(
                    operation.get("requestBody").is_none() || valid_body(method, path).is_some(),
                    "{method} {path} takes a body: give the matrix a valid one"
                );
                let call = Call {
                    app: &app,
                    method,
                    path,
                    url: format!("{base}{concrete}"),
                };
                for (who, token) in [
                    ("no token", None),
                    ("an expired token", Some(expired.clone())),
                    ("a revoked token", Some(logged_out.token.clone())),
                ] {
                    checked.push(call.expect(who, token, StatusCode::UNAUTHORIZED).await);
                }
                let scoped = path.contains("{tenant_id}") || path.contains("{session_id}");
                if scoped {
                    checked.push(
                        call.expect(
                            "another tenant's admin",
                            Some(outsider.admin_token.clone()),
                            StatusCode::NOT_FOUND,
                        )
                        .await,
                    );
                }
                if documents("403") {
                    checked.push(
                        call.expect(
                            "a member",
                            Some(member.token.clone()),
                            StatusCode::FORBIDDEN,
                        )
                        .await,
                    );
                } else if path.contains("{session_id}") {
                    // Another's session is not the member's to see: it does not exist for them.
                    checked.push(
                        call.expect(
                            "a member",
                            Some(member.token.clone()),
                            StatusCode::NOT_FOUND,
                        )
                        .await,
                    );
                }
                if path == "/v1/projections" {
                    checked.push(
                        call.expect(
                            "a tenant's admin",
                            Some(victim.admin_token.clone()),
                            StatusCode::FORBIDDEN,
                        )
                        .await,
                    );
                }
            }
        }
    }
    // Both documents were read and their operations sent, and nothing was appended.
    assert!(
        checked
            .iter()
            .any(|c| c.starts_with("patch /v1/tenants/{tenant_id}/users/{user_id}"))
            && checked
                .iter()
                .any(|c| c.starts_with("get /v1/tenants/{tenant_id}/audit"))
            && checked
                .iter()
                .any(|c| c.starts_with("patch /v1/tenants/{tenant_id} "))
            && checked
                .iter()
                .any(|c| c.starts_with("get /v1/tenants/{tenant_id} ")),
        "{checked:#?}"
    );
    assert_eq!(
        app.event_count().await,
        before,
        "a refused request appended"
    );
    assert!(checked.len() >= 50, "{checked:#?}");
    // The member, the target and the victim's admin are untouched.
    for token in [&member.token, &target.token, &victim.admin_token] {
        let answer = app.update_me(token, json!({"locale": "de"})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
}
