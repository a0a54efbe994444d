//! Membership ending: an admin removes a member, a member leaves.

use integration_tests::{PASSWORD, Pipeline};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_removed_member_is_locked_out_at_once_hidden_from_lists_and_told() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Removals").await;
    let user = app.sign_up_user(tenant.tenant_id, "Removed Member").await;
    let stays = app.sign_up_user(tenant.tenant_id, "Staying Member").await;
    let path = format!("/v1/tenants/{}/members/{}", tenant.tenant_id, user.user_id);
    // A member cannot remove another; another tenant's admin does not see them.
    let other = app.sign_up_tenant("Elsewhere").await;
    let before = app.event_count().await;
    assert_eq!(
        app.delete(&path, Some(&stays.token)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&path, Some(&other.admin_token)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.event_count().await, before, "refusals append nothing");

    let removed = app.delete(&path, Some(&tenant.admin_token)).await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
    let position = removed.body["position"].as_i64().expect("position");
    // The next request with the old token fails on both APIs, and so does a new login.
    assert_eq!(
        app.update_me(&user.token, json!({"locale": "en"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;
    assert_eq!(
        app.refresh(&user.refresh_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let login = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{:?}", login.body);
    assert_eq!(
        login.body["detail"], "the email or password is not correct",
        "answered as an unknown address"
    );
    // Removing again: there is no such member any more.
    assert_eq!(
        app.delete(&path, Some(&tenant.admin_token)).await.status,
        StatusCode::NOT_FOUND
    );
    // Gone from the member list and its search; the read model says why.
    let list = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["user_id"].as_str())
        .collect();
    assert!(!ids.contains(&user.user_id.to_string().as_str()), "{ids:?}");
    assert!(ids.contains(&stays.user_id.to_string().as_str()), "{ids:?}");
    let one = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users/{}", tenant.tenant_id, user.user_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(one.body["status"], "removed", "{:?}", one.body);
    assert!(one.body["role"].is_null());
    let event = app
        .decrypted_stream("user", user.user_id)
        .await
        .into_iter()
        .find(|e| e.event_type == "tenant.member_removed")
        .expect("the removal");
    assert_eq!(event.data["reason"], "removed");
    assert_eq!(event.data["removed_by"], tenant.admin_id.to_string());
    // The member is told once.
    pipeline
        .wait_for_one_email_job(user.user_id, "member_removed")
        .await;
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_member_leaves_but_the_last_admin_cannot_and_nobody_removes_them() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Leaving").await;
    let user = app.sign_up_user(tenant.tenant_id, "Leaving Member").await;
    let left = app.post("/v1/me/leave", Some(&user.token), json!({})).await;
    assert_eq!(left.status, StatusCode::OK, "{:?}", left.body);
    app.query_refused_within_a_second("/v1/me", &user.token)
        .await;
    let event = app
        .decrypted_stream("user", user.user_id)
        .await
        .into_iter()
        .find(|e| e.event_type == "tenant.member_removed")
        .expect("the leaving");
    assert_eq!(event.data["reason"], "left");
    assert_eq!(event.data["removed_by"], user.user_id.to_string());
    let position = left.body["position"].as_i64().expect("position");
    let audit = app
        .query_caught_up(
            &format!(
                "/v1/tenants/{}/audit?type=tenant.member_removed",
                tenant.tenant_id
            ),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(
        audit.body["items"][0]["summary"], "user left the tenant",
        "{:?}",
        audit.body
    );
    let before = app.event_count().await;
    let last = app
        .post("/v1/me/leave", Some(&tenant.admin_token), json!({}))
        .await;
    assert_eq!(last.status, StatusCode::CONFLICT, "{:?}", last.body);
    let self_removal = app
        .delete(
            &format!(
                "/v1/tenants/{}/members/{}",
                tenant.tenant_id, tenant.admin_id
            ),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(self_removal.status, StatusCode::CONFLICT);
    assert_eq!(app.event_count().await, before);
    pipeline
        .wait_for_one_email_job(user.user_id, "left_tenant")
        .await;
    running.stop().await;
    pipeline.finish().await;
}
