//! Teams end to end: an admin's changes, members added once, strangers refused whole, the
//! tenant's removal cascading, and the reads (lists, one team, users by team).

use integration_tests::{Pipeline, TenantFixture, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

fn teams_path(tenant: &TenantFixture) -> String {
    format!("/v1/tenants/{}/teams", tenant.tenant_id)
}

async fn create_team(app: &TestApp, tenant: &TenantFixture, name: &str) -> Uuid {
    let answer = app
        .post(
            &teams_path(tenant),
            Some(&tenant.admin_token),
            json!({"name": name, "description": "Who we are"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.id("team_id")
}

async fn team_events(app: &TestApp, team_id: Uuid) -> Vec<(String, serde_json::Value)> {
    app.db
        .query(
            "SELECT type, data FROM events WHERE aggregate_type = 'team' AND aggregate_id = $1 ORDER BY sequence",
            &[&team_id],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn members_are_added_once_strangers_refuse_the_whole_request_and_removal_cascades() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Teams").await;
    let ada = app.sign_up_user(tenant.tenant_id, "Ada").await;
    let bob = app.sign_up_user(tenant.tenant_id, "Bob").await;
    let other = app.sign_up_tenant("Other").await;
    let team_id = create_team(app, &tenant, "Night shift").await;
    let members_path = format!("{}/{team_id}/members", teams_path(&tenant));

    // A foreign or unknown id in the list adds nobody.
    let before = app.event_count().await;
    for stranger in [other.admin_id, Uuid::new_v4()] {
        let refused = app
            .post(
                &members_path,
                Some(&tenant.admin_token),
                json!({"user_ids": [ada.user_id, stranger]}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            refused.body
        );
        assert!(refused.str("detail").contains(&stranger.to_string()));
    }
    let member_tries = app
        .post(
            &members_path,
            Some(&ada.token),
            json!({"user_ids": [ada.user_id]}),
        )
        .await;
    assert_eq!(member_tries.status, StatusCode::FORBIDDEN);
    let empty = app
        .post(
            &members_path,
            Some(&tenant.admin_token),
            json!({"user_ids": []}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.event_count().await, before, "refusals append nothing");

    // Duplicates in the list and members already in are recorded once.
    let added = app
        .post(
            &members_path,
            Some(&tenant.admin_token),
            json!({"user_ids": [ada.user_id, ada.user_id, bob.user_id]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    let again = app
        .post(
            &members_path,
            Some(&tenant.admin_token),
            json!({"user_ids": [bob.user_id, tenant.admin_id]}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    let events = team_events(app, team_id).await;
    let added: Vec<&serde_json::Value> = events
        .iter()
        .filter(|(kind, _)| kind == "team.members_added")
        .map(|(_, data)| &data["user_ids"])
        .collect();
    assert_eq!(
        added,
        [
            &json!([ada.user_id, bob.user_id]),
            &json!([tenant.admin_id])
        ]
    );

    // Taking one out; then the tenant removes another, who leaves the team with it.
    let out = app
        .delete(
            &format!("{members_path}/{}", bob.user_id),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    let not_in = app
        .delete(
            &format!("{members_path}/{}", bob.user_id),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(not_in.status, StatusCode::NOT_FOUND);
    let removed = app
        .delete(
            &format!("/v1/tenants/{}/members/{}", tenant.tenant_id, ada.user_id),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
    let position = removed.body["position"].as_i64().expect("position");
    let last = team_events(app, team_id).await.pop().expect("an event");
    assert_eq!(last.0, "team.members_removed");
    assert_eq!(last.1["reason"], "left_tenant");
    assert_eq!(last.1["user_ids"], json!([ada.user_id]));

    let team = app
        .query_caught_up(
            &format!("{}/{team_id}", teams_path(&tenant)),
            &bob.token,
            position,
        )
        .await;
    assert_eq!(team.status, StatusCode::OK, "{:?}", team.body);
    let ids: Vec<&str> = team.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["user_id"].as_str())
        .collect();
    assert_eq!(ids, [tenant.admin_id.to_string()]);
    assert_eq!(team.body["name"], "Night shift");
    assert_eq!(team.body["description"], "Who we are");

    // Users by team: only the team's members.
    let users = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users?team_id={team_id}", tenant.tenant_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(users.status, StatusCode::OK, "{:?}", users.body);
    let listed: Vec<&str> = users.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["user_id"].as_str())
        .collect();
    assert_eq!(listed, [tenant.admin_id.to_string()]);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn teams_are_renamed_found_by_name_deleted_and_hidden_from_other_tenants() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Named").await;
    let member = app.sign_up_user(tenant.tenant_id, "Member").await;
    let outsider = app.sign_up_tenant("Outsider").await;
    let kitchen = create_team(app, &tenant, "Kitchen").await;
    let _bar = create_team(app, &tenant, "Bar").await;
    let team_path = format!("{}/{kitchen}", teams_path(&tenant));

    let renamed = app
        .patch(
            &team_path,
            Some(&tenant.admin_token),
            json!({"name": "Pastry kitchen", "description": ""}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    let unchanged = app
        .patch(
            &team_path,
            Some(&tenant.admin_token),
            json!({"name": "Pastry kitchen"}),
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::OK);
    assert_eq!(
        unchanged.body["position"], renamed.body["position"],
        "nothing appended"
    );
    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"colour": "red"}),
    ] {
        let bad = app
            .patch(&team_path, Some(&tenant.admin_token), body.clone())
            .await;
        assert_eq!(
            bad.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            bad.body
        );
    }
    let position = renamed.body["position"].as_i64().expect("position");
    let found = app
        .query_caught_up(
            &format!("{}?q=pastry", teams_path(&tenant)),
            &member.token,
            position,
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
    let names: Vec<&str> = found.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["Pastry kitchen"]);
    assert!(found.body["items"][0]["description"].is_null(), "cleared");
    let paged = app
        .query_caught_up(
            &format!("{}?limit=1", teams_path(&tenant)),
            &member.token,
            position,
        )
        .await;
    let cursor = paged.str("next_cursor");
    assert!(!cursor.is_empty());
    let next = app
        .query(
            &format!("{}?limit=1&cursor={cursor}", teams_path(&tenant)),
            Some(&member.token),
            None,
        )
        .await;
    assert_eq!(next.body["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        next.body["items"][0]["team_id"],
        paged.body["items"][0]["team_id"]
    );

    // Another tenant's admin sees and changes nothing of it.
    let smuggled = format!("/v1/tenants/{}/teams/{kitchen}", outsider.tenant_id);
    assert_eq!(
        app.patch(
            &smuggled,
            Some(&outsider.admin_token),
            json!({"name": "Mine"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&smuggled, Some(&outsider.admin_token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.query(&smuggled, Some(&outsider.admin_token), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let deleted = app.delete(&team_path, Some(&tenant.admin_token)).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(
        app.delete(&team_path, Some(&tenant.admin_token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let gone = app
        .query(
            &team_path,
            Some(&member.token),
            deleted.body["position"].as_i64(),
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    pipeline.wait_for_projections().await;
    pipeline
        .assert_rows_equal_a_rebuild_of(
            &projector::projections::Projection::ALL,
            "team rows differ from a rebuild",
        )
        .await;
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn each_member_added_to_a_team_is_welcomed_once() {
    let smtp = integration_tests::smtp::SmtpServer::start().await;
    let mut pipeline = Pipeline::start().await;
    pipeline.settings.smtp_url = Some(smtp.url().into());
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Welcomes").await;
    let ada = app.sign_up_user(tenant.tenant_id, "Ada").await;
    let bob = app.sign_up_user(tenant.tenant_id, "Bob").await;
    let team_id = create_team(app, &tenant, "Reception").await;
    let added = app
        .post(
            &format!("{}/{team_id}/members", teams_path(&tenant)),
            Some(&tenant.admin_token),
            json!({"user_ids": [ada.user_id, bob.user_id]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    for user in [&ada, &bob] {
        let mails = smtp
            .wait_for(&user.email, 2, integration_tests::WAIT_LIMIT)
            .await;
        assert!(
            mails
                .iter()
                .any(|m| m.subject() == "You joined the team “Reception”"),
            "{:?}",
            mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
        );
        pipeline
            .wait_for_one_email_job(user.user_id, "team_welcome")
            .await;
    }
    projector.stop().await;
    pipeline.finish().await;
}
