//! A stored event of an older schema version is upcast on read, in one place
//! (`eventstore::upcast`): a store holding `user.profile_updated` version 1 events (as an older
//! build wrote them: a `cleared` list) reads, projects, replays and publishes exactly the same
//! as one holding only version 2 (`changed`, with `null` for a cleared field).

use futures_util::StreamExt as _;
use integration_tests::{Pipeline, TestApp};
use projector::projections::Projection;
use serde_json::{Value, json};
use uuid::Uuid;

/// Every table a store needs to be read: its events and the users' data keys.
const STORE_TABLES: &[&str] = &["data_keys", "events"];

/// Copies `from`'s store into `to`'s (empty) database, byte for byte.
async fn copy_store(from: &TestApp, to: &TestApp) {
    for table in STORE_TABLES {
        let mut rows = Vec::new();
        let out = from
            .db
            .copy_out(&format!("COPY {table} TO STDOUT (FORMAT binary)"))
            .await
            .expect("copy out");
        futures_util::pin_mut!(out);
        while let Some(chunk) = out.next().await {
            rows.extend_from_slice(&chunk.expect("a chunk"));
        }
        let sink = to
            .db
            .copy_in::<_, bytes::Bytes>(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
            .await
            .expect("copy in");
        futures_util::pin_mut!(sink);
        futures_util::SinkExt::send(&mut sink, bytes::Bytes::from(rows))
            .await
            .expect("send");
        sink.finish().await.expect("finish");
    }
}

/// Rewrites every other `user.profile_updated` of `app`'s store into version 1, as an older
/// build stored it: no `changed`, a cleared phone in `cleared` instead of a `null`. (Sealed
/// values are bound to their event and field name, both kept, so they stay readable.)
async fn store_half_as_version_1(app: &TestApp) -> u64 {
    app.db
        .batch_execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
        .await
        .expect("an older build's rows");
    let rewritten = app
        .db
        .execute(
            "UPDATE events SET version = 1,
                    data = (data - 'changed' - 'phone')
                        || CASE WHEN data->'phone' = 'null'::jsonb THEN '{\"cleared\": [\"phone\"]}'::jsonb
                                WHEN data ? 'phone' THEN jsonb_build_object('phone', data->'phone')
                                ELSE '{}'::jsonb END
              WHERE type = 'user.profile_updated'
                AND position IN (SELECT position FROM events WHERE type = 'user.profile_updated'
                                  ORDER BY position LIMIT 100 OFFSET 0)
                AND position % 2 = 0",
            &[],
        )
        .await
        .expect("rewrite");
    app.db
        .batch_execute("ALTER TABLE events ENABLE TRIGGER events_immutable")
        .await
        .expect("immutable again");
    rewritten
}

/// Every stream of the store, each read through the store (upcast, decrypted).
async fn every_stream(app: &TestApp) -> Vec<String> {
    let streams = app
        .db
        .query(
            "SELECT DISTINCT aggregate_type, aggregate_id FROM events ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("streams");
    let mut read = Vec::new();
    for row in streams {
        let (aggregate_type, aggregate_id): (String, Uuid) = (row.get(0), row.get(1));
        for event in app.decrypted_stream(&aggregate_type, aggregate_id).await {
            read.push(format!("{event:?}"));
        }
    }
    read
}

/// Every message the relay published, as JSON.
async fn published(pipeline: &Pipeline) -> Vec<Value> {
    let stream = pipeline
        .js
        .get_stream(&pipeline.settings.stream.name)
        .await
        .expect("stream");
    let mut messages = Vec::new();
    for sequence in 1..=pipeline.stream_messages().await {
        let message = stream.get_raw_message(sequence).await.expect("message");
        messages.push(serde_json::from_slice(&message.payload).expect("json"));
    }
    messages
}

#[tokio::test]
async fn a_store_with_version_1_events_reads_projects_replays_and_publishes_as_one_with_only_version_2()
 {
    // The store of today: profile updates of every kind, a cleared phone, an erased user.
    let current = Pipeline::start().await;
    let app = &current.app;
    let tenant = app.sign_up_tenant("Versions").await;
    let mut users = Vec::new();
    for n in 0..4 {
        let user = app
            .sign_up_user(tenant.tenant_id, &format!("Person {n}"))
            .await;
        for body in [
            json!({"display_name": format!("Person {n} Renamed"), "phone": "+4915112345678"}),
            json!({"locale": "de-DE"}),
            json!({"phone": null}),
            json!({"display_name": format!("P. {n}"), "phone": "+4930123456", "locale": "en-GB"}),
        ] {
            let answer = app.update_me(&user.token, body).await;
            assert_eq!(answer.status, reqwest::StatusCode::OK, "{answer:?}");
        }
        users.push(user);
    }
    let erased = app.erase(&tenant, users[3].user_id).await;
    assert!(erased.status.is_success(), "{erased:?}");
    let projector = current.spawn_projector();
    current.wait_for_projections().await;
    projector.stop().await;

    // The same history, stored half in version 1 (the same master key opens it).
    let master_key = app.settings.master_key.clone();
    let older = Pipeline::start_with(None, move |settings| settings.master_key = master_key).await;
    copy_store(app, &older.app).await;
    let rewritten = store_half_as_version_1(&older.app).await;
    assert!(rewritten >= 6, "version 1 events in the store: {rewritten}");
    let versions: Vec<(i32, i64)> = older
        .app
        .db
        .query(
            "SELECT version, count(*) FROM events WHERE type = 'user.profile_updated'
              GROUP BY version ORDER BY version",
            &[],
        )
        .await
        .expect("versions")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(versions.len(), 2, "both versions stored: {versions:?}");

    // Reads: every stream, through the store.
    assert_eq!(every_stream(&older.app).await, every_stream(app).await);

    // Projects and publishes: the relay and every projection over the mixed store.
    let projector = older.spawn_projector();
    older.wait_for_projections().await;
    projector.stop().await;
    assert_eq!(published(&older).await, published(&current).await);
    for message in published(&older).await {
        if message["type"] == "user.profile_updated" {
            assert_eq!(message["version"], 2, "{message}");
            assert!(message["data"]["changed"].is_array(), "{message}");
            assert!(message["data"].get("cleared").is_none(), "{message}");
        }
    }
    assert_eq!(
        older.read_models_text().await,
        current.read_models_text().await
    );

    // Replays: rebuilt from the mixed store, the same rows again.
    older
        .assert_rows_equal_a_rebuild_of(
            &[Projection::Users, Projection::Audit, Projection::Activity],
            "a replay over version 1 events",
        )
        .await;
    assert_eq!(
        older.read_models_text().await,
        current.read_models_text().await
    );
    older.finish().await;
    current.finish().await;
}
