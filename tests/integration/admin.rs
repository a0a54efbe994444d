use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_admin_changes_a_members_role_and_the_new_role_takes_effect() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Roles").await;
    let user = app.sign_up_user(tenant.tenant_id, "Promoted").await;
    let path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, user.user_id);

    let before = app
        .patch(&path, Some(&user.token), json!({"role": "admin"}))
        .await;
    assert_eq!(
        before.status,
        StatusCode::FORBIDDEN,
        "a member cannot promote themself"
    );
    assert!(before.is_problem());

    let promoted = app
        .patch(&path, Some(&tenant.admin_token), json!({"role": "admin"}))
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{:?}", promoted.body);
    assert_eq!(promoted.body["version"], 3);
    let data: serde_json::Value = app
        .db
        .query_one(
            "SELECT data FROM events WHERE aggregate_id = $1 AND type = 'tenant.member_role_changed'",
            &[&user.user_id],
        )
        .await
        .expect("event")
        .get(0);
    assert_eq!(data["old_role"], "member");
    assert_eq!(data["new_role"], "admin");
    assert_eq!(data["changed_by"], tenant.admin_id.to_string());

    // The promoted user may now manage the original admin, with the token they already had.
    let admin_path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, tenant.admin_id);
    let demoted = app
        .patch(&admin_path, Some(&user.token), json!({"role": "member"}))
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{:?}", demoted.body);

    let unchanged = app
        .patch(&path, Some(&user.token), json!({"role": "admin"}))
        .await;
    assert_eq!(unchanged.status, StatusCode::OK);
    assert_eq!(
        unchanged.body["version"], 3,
        "setting the current role appends nothing"
    );

    let invalid = app
        .patch(&path, Some(&user.token), json!({"role": "owner"}))
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    let empty = app.patch(&path, Some(&user.token), json!({})).await;
    assert_eq!(
        empty.status,
        StatusCode::OK,
        "an empty merge patch changes nothing"
    );
    assert_eq!(empty.body["version"], 3);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_deactivated_or_erased() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("LastAdmin").await;
    let path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, tenant.admin_id);
    let before = app.event_count().await;
    for body in [json!({"role": "member"}), json!({"status": "deactivated"})] {
        let answer = app
            .patch(&path, Some(&tenant.admin_token), body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{body}");
        assert!(answer.str("detail").contains("last active administrator"));
    }
    let erase = app.delete(&path, Some(&tenant.admin_token)).await;
    assert_eq!(erase.status, StatusCode::CONFLICT);
    assert_eq!(app.event_count().await, before);

    // With a second active admin, the first may step down.
    let second = app.sign_up_user(tenant.tenant_id, "Second").await;
    let promote = app
        .manage_user(
            tenant.tenant_id,
            second.user_id,
            &tenant.admin_token,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(promote.status, StatusCode::OK);
    let step_down = app
        .patch(&path, Some(&tenant.admin_token), json!({"role": "member"}))
        .await;
    assert_eq!(step_down.status, StatusCode::OK);
}

#[tokio::test]
async fn two_admins_deactivating_each_other_at_once_leave_one_active_admin() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Race").await;
    let second = app.sign_up_user(tenant.tenant_id, "Second Admin").await;
    let promote = app
        .manage_user(
            tenant.tenant_id,
            second.user_id,
            &tenant.admin_token,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(promote.status, StatusCode::OK);
    let first_path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, tenant.admin_id);
    let second_path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, second.user_id);
    let body = json!({"status": "deactivated"});
    let (a, b) = tokio::join!(
        app.patch(&second_path, Some(&tenant.admin_token), body.clone()),
        app.patch(&first_path, Some(&second.token), body.clone()),
    );
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert!(
        statuses.iter().any(|s| [
            StatusCode::CONFLICT,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN
        ]
        .contains(s)),
        "exactly one wins: {statuses:?} {:?} {:?}",
        a.body,
        b.body
    );
    let active_admins: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM auth_principals WHERE tenant_id = $1 AND role = 'admin' AND status = 'active'",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(active_admins, 1);
}

#[tokio::test]
async fn a_deactivated_user_is_locked_out_within_a_second_and_reactivation_needs_a_new_login() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Deactivate").await;
    let user = app.sign_up_user(tenant.tenant_id, "Suspended").await;
    let path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, user.user_id);

    // The query API has authenticated the session (and remembers it).
    let before = app.query("/v1/me", Some(&user.token), None).await;
    assert_ne!(before.status, StatusCode::UNAUTHORIZED);
    let deactivated = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"status": "deactivated"}),
        )
        .await;
    assert_eq!(deactivated.status, StatusCode::OK, "{:?}", deactivated.body);
    // The very next command is refused; the query side refuses the token within a second.
    let with_old_token = app.update_me(&user.token, json!({"locale": "en"})).await;
    assert_eq!(with_old_token.status, StatusCode::UNAUTHORIZED);
    assert!(with_old_token.is_problem());
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;
    let login = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(login.str("detail").contains("deactivated"));
    let refresh = app.refresh(&user.refresh_token).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);

    let again = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"status": "deactivated"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    // Version 4 is the failed login in between; deactivating again appends nothing.
    assert_eq!(again.body["version"], 4);

    let reactivated = app
        .patch(
            &path,
            Some(&tenant.admin_token),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(reactivated.status, StatusCode::OK);
    let old_token = app.update_me(&user.token, json!({"locale": "en"})).await;
    assert_eq!(
        old_token.status,
        StatusCode::UNAUTHORIZED,
        "sessions ended by deactivation stay ended"
    );
    let old_refresh = app.refresh(&user.refresh_token).await;
    assert_eq!(old_refresh.status, StatusCode::UNAUTHORIZED);
    let login = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::CREATED);
    assert_eq!(
        app.stream_types(user.user_id).await,
        [
            "user.created",
            "tenant.member_joined",
            "user.deactivated",
            "user.login_failed",
            "user.reactivated"
        ]
    );
}

#[tokio::test]
async fn a_member_cannot_manage_other_members() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Members").await;
    let alice = app.sign_up_user(tenant.tenant_id, "Alice").await;
    let bob = app.sign_up_user(tenant.tenant_id, "Bob").await;
    let before = app.event_count().await;
    let path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, bob.user_id);
    for body in [json!({"status": "deactivated"}), json!({"role": "admin"})] {
        let answer = app.patch(&path, Some(&alice.token), body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        app.delete(&path, Some(&alice.token)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn an_admin_edits_a_members_profile_as_the_actor_and_the_member_is_told() {
    let pipeline = integration_tests::Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Edits").await;
    let user = app.sign_up_user(tenant.tenant_id, "Edited Member").await;
    let other = app.sign_up_user(tenant.tenant_id, "Other Member").await;
    let edit = app
        .manage_user(
            tenant.tenant_id,
            user.user_id,
            &tenant.admin_token,
            json!({"display_name": "  Edited By Admin ", "phone": "+4915100000001", "role": "admin"}),
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK, "{:?}", edit.body);
    let events = app.decrypted_stream("user", user.user_id).await;
    let update = events
        .iter()
        .find(|e| e.event_type == "user.profile_updated")
        .expect("a profile update");
    assert_eq!(update.data["updated_by"], tenant.admin_id.to_string());
    assert_eq!(update.data["display_name"], "Edited By Admin");
    assert_eq!(update.metadata.actor_id, Some(tenant.admin_id));
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "tenant.member_role_changed"),
        "role and profile in one request"
    );
    let position = edit.body["position"].as_i64().expect("position");
    let shown = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users/{}", tenant.tenant_id, user.user_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(
        shown.body["display_name"], "Edited By Admin",
        "{:?}",
        shown.body
    );
    assert_eq!(shown.body["phone"], "+4915100000001");
    // The member is told, as when they change it themselves.
    pipeline
        .wait_for_one_email_job(user.user_id, "profile_updated")
        .await;
    // Bad values and other members are refused, and change nothing.
    let before = app.event_count().await;
    for (token, body, status) in [
        (
            &tenant.admin_token,
            json!({"display_name": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &tenant.admin_token,
            json!({"locale": null}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &tenant.admin_token,
            json!({"phone": "12"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &other.token,
            json!({"display_name": "Hijack"}),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let answer = app
            .manage_user(tenant.tenant_id, user.user_id, token, body.clone())
            .await;
        assert_eq!(answer.status, status, "{body}: {:?}", answer.body);
    }
    assert_eq!(app.event_count().await, before);
    running.stop().await;
    pipeline.finish().await;
}
