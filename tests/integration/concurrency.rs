use std::sync::Arc;

use chrono::Utc;
use domain::{DomainEvent, UserEvent};
use infra::crypto::{KeyRing, MasterKey};
use infra::envelope::EventMetadata;
use infra::store::{EventStore, ExpectedVersion, StoreError};
use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;

fn store_of(app: &TestApp) -> EventStore {
    EventStore::new(
        infra::db::pool(&app.database_url, 8).expect("pool"),
        Arc::new(KeyRing::new(
            MasterKey::from_base64(app.settings.master_key.as_ref().expect("key").expose())
                .expect("key"),
        )),
    )
}

#[tokio::test]
async fn two_appends_at_the_same_expected_version_commit_exactly_one() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Versions").await;
    let store = store_of(&app);
    let user_id = tenant.admin_id;
    let version = 2; // user.created, tenant.member_joined
    let append = |locale: &'static str| {
        let store = store.clone();
        async move {
            let unit = store.begin().await.expect("begin");
            let event = DomainEvent::User {
                user_id,
                event: UserEvent::ProfileUpdated {
                    user_id,
                    display_name: None,
                    phone: None,
                    locale: Some(locale.into()),
                    cleared: vec![],
                    updated_by: user_id,
                },
            };
            let result = unit
                .append(
                    tenant.tenant_id,
                    &[ExpectedVersion {
                        aggregate_id: user_id,
                        version,
                    }],
                    &[event],
                    &EventMetadata {
                        source: "test".into(),
                        ..Default::default()
                    },
                    Utc::now(),
                )
                .await;
            match result {
                Ok(_) => unit.commit().await.map(|_| ()),
                Err(error) => {
                    unit.rollback().await;
                    Err(error)
                }
            }
        }
    };
    let (a, b) = tokio::join!(append("en"), append("fr"));
    let results = [a, b];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Conflict { .. }))),
        "the loser gets a conflict, never a lost update: {results:?}"
    );
    assert_eq!(app.stream_types(user_id).await.len(), 3);
}

#[tokio::test]
async fn concurrent_profile_updates_are_re_decided_and_none_is_lost() {
    let app = Arc::new(TestApp::spawn().await);
    let tenant = app.sign_up_tenant("Concurrent").await;
    let user = app.sign_up_user(tenant.tenant_id, "Busy").await;
    let mut tasks = JoinSet::new();
    for index in 0..8 {
        let app = Arc::clone(&app);
        let token = user.token.clone();
        tasks.spawn(async move {
            app.patch(
                "/v1/me",
                Some(&token),
                json!({"display_name": format!("Name {index}")}),
            )
            .await
        });
    }
    let mut versions = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.expect("task");
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::CONFLICT,
            "{:?}",
            answer.body
        );
        if answer.status == StatusCode::OK {
            versions.push(answer.body["version"].as_i64().expect("version"));
        }
    }
    versions.sort_unstable();
    let appended = app.stream_types(user.user_id).await.len() as i64 - 2;
    assert_eq!(
        versions.len() as i64,
        appended,
        "every success is exactly one event"
    );
    versions.dedup();
    assert_eq!(
        versions.len() as i64,
        appended,
        "no two successes share a version"
    );
}

#[tokio::test]
async fn twenty_concurrent_signups_with_one_email_in_different_cases_create_one_user() {
    let app = Arc::new(TestApp::spawn().await);
    let tenant = app.sign_up_tenant("Stampede").await;
    let mut tasks = JoinSet::new();
    for index in 0..20 {
        let app = Arc::clone(&app);
        let email = if index % 2 == 0 {
            "Same.Person@Example.com"
        } else {
            "same.person@example.COM"
        };
        tasks.spawn(async move {
            app.post(
                &format!("/v1/tenants/{}/users", tenant.tenant_id),
                None,
                json!({"email": email, "password": PASSWORD, "display_name": format!("Person {index}")}),
            )
            .await
            .status
        });
    }
    let mut created = 0;
    let mut conflicts = 0;
    while let Some(status) = tasks.join_next().await {
        match status.expect("task") {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, conflicts), (1, 19));
    let users: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'user.created'",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(users, 2, "the admin and exactly one new user");
}

#[tokio::test]
async fn positions_and_transaction_ids_are_recorded_for_the_ordered_relay() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Order").await;
    let _ = app.sign_up_user(tenant.tenant_id, "One").await;
    let rows = app
        .db
        .query(
            "SELECT position, transaction_id::text::bigint FROM events ORDER BY transaction_id, position",
            &[],
        )
        .await
        .expect("rows");
    let positions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(
        positions, sorted,
        "without concurrency, commit order and position order agree"
    );
    // Other databases' open transactions can hold the cluster-wide horizon back for a
    // moment; every committed event passes it once they end.
    let mut below_horizon = 0;
    for _ in 0..100 {
        below_horizon = app
            .db
            .query_one(
                "SELECT count(*) FROM events WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        if below_horizon == positions.len() as i64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        below_horizon,
        positions.len() as i64,
        "committed events pass the visibility horizon"
    );
}

#[tokio::test]
async fn a_state_kept_by_one_api_instance_never_hides_what_another_appended() {
    let app = TestApp::spawn().await;
    let second = command_api::Application::build(app.settings.clone())
        .await
        .expect("a second command API");
    let second_address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    let tenant = app.sign_up_tenant("Kept").await;
    let user = app.sign_up_user(tenant.tenant_id, "Kept User").await;
    let patch = async |base: &str, name: &str| {
        let answer = app
            .send(
                app.http
                    .patch(format!("{base}/v1/me"))
                    .bearer_auth(&user.token)
                    .json(&json!({"display_name": name})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.body["version"].as_i64().expect("version")
    };
    // The first instance folds the stream and keeps the state (name "Ada").
    let first = patch(&app.address, "Ada").await;
    // The second instance appends behind its back (name "Grace").
    let second = patch(&second_address, "Grace").await;
    assert_eq!(second, first + 1);
    // Back to "Ada" on the first instance: with only its kept state it would see no change
    // and append nothing; it must read what was appended since and append the change.
    let third = patch(&app.address, "Ada").await;
    assert_eq!(
        third,
        second + 1,
        "the change was decided on the whole stream"
    );
    // Unchanged now, on either instance: nothing appended.
    assert_eq!(patch(&second_address, "Ada").await, third);
    assert_eq!(patch(&app.address, "Ada").await, third);
    let types = app.stream_types(user.user_id).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "user.profile_updated")
            .count(),
        3,
        "{types:?}"
    );
}
