use integration_tests::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn erasure_leaves_no_personal_data_readable_and_the_user_cannot_log_in() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Erasure").await;
    let email = "Zelda.Unique@Example.com";
    let signup = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": email, "password": PASSWORD, "display_name": "Zelda Forgettable"}),
        )
        .await;
    assert_eq!(signup.status, StatusCode::CREATED);
    let user_id = signup.id("user_id");
    let login = app.log_in(tenant.tenant_id, email, PASSWORD).await;
    let token = login.str("access_token");
    let update = app
        .update_me(
            &token,
            json!({"display_name": "Zelda Renamed", "phone": "+4915199988877"}),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK);

    // Before erasure the personal data is in the events, but only encrypted.
    let before = app.events_table_text().await;
    for secret in ["Zelda", "zelda", "Forgettable", "4915199988877", "argon2"] {
        assert!(!before.contains(secret), "{secret} is stored in clear");
    }

    let erased = app.erase(&tenant, user_id).await;
    assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
    assert!(erased.body["position"].as_i64().is_some());
    assert_eq!(
        app.stream_types(user_id).await,
        [
            "user.created",
            "tenant.member_joined",
            "user.profile_updated",
            "tenant.member_removed",
            "user.deleted"
        ]
    );

    let keys: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM data_keys WHERE subject_id = $1",
            &[&user_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(keys, 0, "the data key is destroyed");
    let store = eventstore::EventStore::new(
        infra::db::pool(&app.database_url, 2).expect("pool"),
        std::sync::Arc::new(infra::crypto::KeyRing::new(
            infra::crypto::MasterKey::from_base64(
                app.settings.master_key.as_ref().expect("key").expose(),
            )
            .expect("key"),
        )),
    );
    let events = store
        .load_stream("user", user_id)
        .await
        .expect("events still load");
    let text = serde_json::to_string(&events.iter().map(|e| e.envelope()).collect::<Vec<_>>())
        .expect("json");
    for secret in ["Zelda", "zelda", "Forgettable", "4915199988877", "argon2"] {
        assert!(!text.contains(secret), "{secret} is readable after erasure");
    }
    assert!(text.contains("[erased]"));

    assert_eq!(
        app.log_in(tenant.tenant_id, email, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.update_me(&token, json!({"locale": "en"})).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app.erase(&tenant, user_id).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // The address is free again: a new person may sign up with it.
    let reuse = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": email, "password": PASSWORD, "display_name": "Someone Else"}),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::CREATED);
    assert_ne!(reuse.id("user_id"), user_id);
}

#[tokio::test]
async fn an_erased_subject_never_gets_a_data_key_again() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Forever").await;
    let user = app.sign_up_user(tenant.tenant_id, "Gone For Good").await;
    let erased = app
        .erase_user(tenant.tenant_id, user.user_id, &tenant.admin_token)
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
    let recorded: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM erased_subjects WHERE subject_id = $1 AND tenant_id = $2",
            &[&user.user_id, &tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(recorded, 1, "the erasure is remembered");

    // A writer that still holds the user's id (a stale cache, a late import) tries to
    // record personal data for them: no new key is made, nothing is appended.
    let version = app.stream_types(user.user_id).await.len() as i64;
    let result = app
        .append_rename(
            tenant.tenant_id,
            user.user_id,
            "Back From The Dead",
            chrono::Utc::now(),
        )
        .await;
    assert!(
        matches!(result, Err(eventstore::StoreError::SubjectErased)),
        "{result:?}"
    );
    let keys: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM data_keys WHERE subject_id = $1",
            &[&user.user_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(keys, 0);
    assert_eq!(app.stream_types(user.user_id).await.len() as i64, version);
    assert!(!app.events_table_text().await.contains("Back From The Dead"));
}
