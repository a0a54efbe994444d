use std::time::Duration;

use async_nats::HeaderMap;
use chrono::Utc;
use domain::{DomainEvent, UserEvent};
use eventstore::EventMetadata;
use eventstore::{Changes, EventStore, ExpectedVersion};
use integration_tests::Pipeline;
use projector::projections::Projection;
use serde_json::json;

async fn some_activity(pipeline: &Pipeline, users: usize) -> integration_tests::TenantFixture {
    let tenant = pipeline.app.sign_up_tenant("Projected").await;
    for index in 0..users {
        let user = pipeline
            .app
            .sign_up_user(tenant.tenant_id, &format!("User {index}"))
            .await;
        let update = pipeline
            .app
            .update_me(
                &user.token,
                json!({"display_name": format!("Renamed {index}")}),
            )
            .await;
        assert_eq!(update.status, reqwest::StatusCode::OK);
    }
    tenant
}

async fn event_count(pipeline: &Pipeline) -> i64 {
    pipeline.app.event_count().await
}

/// The event types in the stream, in stream order.
async fn published_types(pipeline: &Pipeline) -> Vec<String> {
    let stream = pipeline
        .js
        .get_stream(&pipeline.settings.stream.name)
        .await
        .expect("stream");
    let count = pipeline.stream_messages().await;
    let mut types = Vec::new();
    for sequence in 1..=count {
        let message = stream.get_raw_message(sequence).await.expect("message");
        let envelope: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        types.push(envelope["type"].as_str().unwrap_or_default().to_owned());
    }
    types
}

#[tokio::test]
async fn an_event_that_commits_late_is_published_and_before_those_that_committed_after_it() {
    let pipeline = Pipeline::start().await;
    let tenant = pipeline.app.sign_up_tenant("Race").await;
    let initial = event_count(&pipeline).await;
    assert_eq!(pipeline.relay_until(initial as usize).await as i64, initial);
    let before = pipeline.stream_messages().await;

    // A transaction appends first and stays open …
    let store = EventStore::new(pipeline.pool.clone(), pipeline.keys.clone());
    let held = store.begin().await.expect("begin");
    held.append(
        Changes::of_events(
            tenant.tenant_id,
            Utc::now(),
            &[ExpectedVersion {
                aggregate_id: tenant.admin_id,
                version: 2,
            }],
            vec![DomainEvent::User {
                user_id: tenant.admin_id,
                event: UserEvent::profile_updated(
                    tenant.admin_id,
                    None,
                    None,
                    Some("fi".into()),
                    tenant.admin_id,
                )
                .expect("a change"),
            }],
        ),
        &EventMetadata {
            source: "test".into(),
            ..Default::default()
        },
    )
    .await
    .expect("append");
    // … while later transactions commit.
    for index in 0..3 {
        let _ = pipeline
            .app
            .sign_up_user(tenant.tenant_id, &format!("Later {index}"))
            .await;
    }
    assert_eq!(
        pipeline.relay_all().await,
        0,
        "nothing after the open transaction is published yet"
    );
    assert_eq!(pipeline.stream_messages().await, before);

    held.commit().await.expect("commit");
    assert_eq!(pipeline.relay_until(1 + 3 * 3).await, 1 + 3 * 3);
    let types = published_types(&pipeline).await;
    let after: Vec<&str> = types[before as usize..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        after[0], "user.profile_updated",
        "the held event comes first: {after:?}"
    );
    assert_eq!(after.len(), 10);
    pipeline.finish().await;
}

#[tokio::test]
async fn every_committed_event_reaches_every_read_model_exactly_once() {
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector();
    let tenant = some_activity(&pipeline, 3).await;
    pipeline.wait_for_projections().await;
    let events = event_count(&pipeline).await;
    for (projection, applied) in pipeline.applied().await {
        assert_eq!(applied, events, "{projection} applied each event once");
    }
    let db = &pipeline.app.db;
    let users: Vec<(String, String)> = db
        .query(
            "SELECT display_name, role FROM rm_users WHERE tenant_id = $1 ORDER BY display_name",
            &[&tenant.tenant_id],
        )
        .await
        .expect("users")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(users.len(), 4);
    assert!(
        users
            .iter()
            .any(|(name, role)| name == "Renamed 0" && role == "member")
    );
    assert!(
        users
            .iter()
            .any(|(name, role)| name == "Projected Admin" && role == "admin")
    );
    let audit: i64 = db
        .query_one("SELECT count(*) FROM rm_audit", &[])
        .await
        .expect("audit")
        .get(0);
    assert_eq!(audit, events);
    let actions: Vec<String> = db
        .query(
            "SELECT DISTINCT action FROM rm_activity ORDER BY action",
            &[],
        )
        .await
        .expect("activity")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, ["logged_in", "profile_updated", "signed_up"]);

    // The projector reports on its own port.
    let http = integration_tests::http_client();
    let ready = http
        .get(format!("{}/ready", running.address))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(ready["checks"]["postgres"]["status"], "up");
    assert_eq!(ready["checks"]["nats"]["status"], "up");
    let metrics = http
        .get(format!("{}/metrics", running.address))
        .bearer_auth(integration_tests::METRICS_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "eventra_relay_events_published_total",
        "eventra_projection_events_applied_total{projection=\"users\"}",
        "eventra_projection_position{projection=\"audit\"}",
    ] {
        assert!(metrics.contains(name), "{name} is missing from\n{metrics}");
    }
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_duplicate_delivery_changes_nothing() {
    let pipeline = Pipeline::start().await;
    let _ = some_activity(&pipeline, 1).await;
    pipeline.relay_all().await;
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    let applied = pipeline.applied().await;
    let models = pipeline.read_models_text().await;

    // The same event again under another message id, which JetStream cannot de-duplicate.
    let stream = pipeline
        .js
        .get_stream(&pipeline.settings.stream.name)
        .await
        .expect("stream");
    for sequence in [1, 2, 3] {
        let original = stream.get_raw_message(sequence).await.expect("message");
        let mut headers = HeaderMap::new();
        for (name, values) in original.headers.iter() {
            if AsRef::<str>::as_ref(name) != "Nats-Msg-Id" {
                for value in values {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        headers.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
        pipeline
            .js
            .publish_with_headers(
                original.subject.to_string(),
                headers,
                original.payload.clone(),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let stream_total = pipeline.stream_messages().await;
    assert_eq!(
        stream_total as i64,
        event_count(&pipeline).await + 3,
        "the duplicates are in the stream"
    );
    // Every projection has consumed the duplicates (delivered and acknowledged them) before
    // anything is compared.
    integration_tests::wait_until("every projection to acknowledge the duplicates", || async {
        let mut consumed = true;
        let consumers = pipeline.consumers().await;
        consumed &= !consumers.is_empty();
        for mut consumer in consumers {
            let info = consumer.info().await.expect("info");
            consumed &= info.ack_floor.stream_sequence == stream_total
                && info.num_pending == 0
                && info.num_ack_pending == 0;
        }
        consumed
    })
    .await;
    assert_eq!(pipeline.applied().await, applied);
    assert_eq!(pipeline.read_models_text().await, models);
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_poison_message_and_a_poison_event_are_dead_lettered_and_later_events_still_projected() {
    let pipeline = Pipeline::start().await;
    let tenant = pipeline.app.sign_up_tenant("Poison").await;
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;

    // A message that is not an event at all.
    pipeline
        .publish_garbage(tenant.tenant_id, "{definitely not an envelope")
        .await;
    // An event in the store whose data does not decode (as an older, buggy writer might
    // have left it).
    pipeline
        .app
        .db
        .execute(
            "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, sequence, type, version, data, metadata, occurred_at)
             VALUES ($1, $2, 'user', $3, 1, 'user.created', 1, '{\"unexpected\": true, \"email\": \"poisoned@example.com\"}', '{\"source\": \"test\"}', now())",
            &[&uuid::Uuid::new_v4(), &tenant.tenant_id, &uuid::Uuid::new_v4()],
        )
        .await
        .expect("insert a poison event");
    let later = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "After The Poison")
        .await;
    pipeline.wait_for_projections().await;

    let name = pipeline
        .app
        .projected_name(later.user_id)
        .await
        .expect("the later user is projected");
    assert_eq!(name, "After The Poison");
    let letters = projector::dead_letters::list(&pipeline.pool, Some(Projection::Users), 100)
        .await
        .expect("list");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .any(|l| l.event_id.is_none() && l.error.contains("no headers")),
        "{letters:?}"
    );
    let poison_event = letters
        .iter()
        .find(|l| l.event_id.is_some())
        .expect("the poison event");
    assert!(
        poison_event.error.contains("does not decode"),
        "{}",
        poison_event.error
    );
    // The dead letter keeps the envelope and the data's field names, never their values
    // (which may be personal and would outlive an erasure).
    let payload: String = pipeline
        .app
        .db
        .query_one(
            "SELECT payload FROM dead_letters WHERE id = $1",
            &[&poison_event.id],
        )
        .await
        .expect("payload")
        .get(0);
    let payload: serde_json::Value = serde_json::from_str(&payload).expect("json");
    assert_eq!(payload["data"]["email"], "[withheld]", "{payload}");
    assert_eq!(payload["type"], "user.created");
    assert!(!payload.to_string().contains("poisoned@"), "{payload}");

    // Retrying the poison event fails again (it is still malformed); discarding removes it.
    let outcome = projector::dead_letters::retry(&pipeline.pool, &pipeline.keys, poison_event.id)
        .await
        .expect("retry");
    assert_eq!(outcome, projector::dead_letters::RetryOutcome::StillFailing);
    for letter in projector::dead_letters::list(&pipeline.pool, Some(Projection::Users), 100)
        .await
        .expect("list")
    {
        projector::dead_letters::discard(&pipeline.pool, letter.id)
            .await
            .expect("discard");
    }
    assert!(
        projector::dead_letters::list(&pipeline.pool, Some(Projection::Users), 100)
            .await
            .expect("list")
            .is_empty()
    );
    running.stop().await;
    pipeline.finish().await;
}

/// Whether any projection's consumer holds messages delivered and not yet acknowledged.
async fn a_batch_is_in_flight(pipeline: &Pipeline) -> bool {
    for mut consumer in pipeline.consumers().await {
        if consumer
            .info()
            .await
            .is_ok_and(|info| info.num_ack_pending > 0)
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_projector_killed_mid_stream_resumes_and_applies_every_event_exactly_once() {
    let mut pipeline = Pipeline::start().await;
    // Small batches under live writes, so that kills land while a batch is delivered and
    // not yet applied and acknowledged.
    pipeline.settings.batch_size = 4;
    let pipeline = std::sync::Arc::new(pipeline);
    let writer = {
        let pipeline = std::sync::Arc::clone(&pipeline);
        tokio::spawn(async move { some_activity(&pipeline, 80).await })
    };
    // The read-model projections are killed here in-process (the search index is killed in
    // `the_search_index_killed_with_its_projector_in_process...` and as a process in
    // `faults`).
    let mut kills_mid_batch = 0;
    while kills_mid_batch < 3 && !writer.is_finished() {
        let running = pipeline.spawn_projector_of(Projection::ALL.to_vec());
        // Let it apply live batches for a while, then kill it the moment a batch is
        // delivered and not yet acknowledged.
        let before: i64 = pipeline.applied().await.iter().map(|(_, n)| n).sum();
        integration_tests::wait_until("the projector to apply some batches", || async {
            writer.is_finished()
                || pipeline.applied().await.iter().map(|(_, n)| n).sum::<i64>() >= before + 48
        })
        .await;
        let mut in_flight = false;
        for _ in 0..400 {
            in_flight = a_batch_is_in_flight(&pipeline).await;
            if in_flight || writer.is_finished() {
                break;
            }
        }
        running.kill().await;
        if in_flight {
            kills_mid_batch += 1;
        }
    }
    assert!(
        kills_mid_batch > 0,
        "no kill landed while a batch was in flight"
    );
    // The last one runs while the writes go on, applying them as they come.
    let running = pipeline.spawn_projector();
    writer.await.expect("the writer");
    let events = event_count(&pipeline).await;
    pipeline.wait_for_projections().await;
    running.stop().await;
    for (projection, applied) in pipeline.applied().await {
        assert_eq!(
            applied, events,
            "{projection} applied each event exactly once"
        );
    }
    // The rows equal what the event store rebuilds from nothing.
    pipeline
        .assert_rows_equal_a_rebuild_of(&Projection::ALL, "the resumed rows differ from a rebuild")
        .await;
    if let Ok(pipeline) = std::sync::Arc::try_unwrap(pipeline) {
        pipeline.finish().await;
    }
}

#[tokio::test]
async fn a_relay_killed_between_publishing_and_its_checkpoint_causes_no_duplicate() {
    let pipeline = Pipeline::start().await;
    let _ = some_activity(&pipeline, 2).await;
    let events = event_count(&pipeline).await;
    let relay = pipeline.relay();
    let published = relay
        .publish_without_checkpoint(&pipeline.app.db)
        .await
        .expect("publish");
    assert!(published.is_some());
    // The "restarted" relay starts again from the old checkpoint and publishes again.
    assert_eq!(pipeline.relay_until(events as usize).await as i64, events);
    assert_eq!(
        pipeline.stream_messages().await as i64,
        events,
        "JetStream de-duplicated by event id"
    );
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    for (projection, applied) in pipeline.applied().await {
        assert_eq!(applied, events, "{projection}");
    }
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_deleted_stream_is_recreated_and_every_projection_converges() {
    let pipeline = Pipeline::start().await;
    let tenant = some_activity(&pipeline, 2).await;
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    pipeline
        .js
        .delete_stream(&pipeline.settings.stream.name)
        .await
        .expect("delete the stream");
    let after = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "After The Loss")
        .await;
    pipeline.wait_for_projections().await;
    let events = event_count(&pipeline).await;
    let found: i64 = pipeline
        .app
        .db
        .query_one(
            "SELECT count(*) FROM rm_users WHERE user_id = $1",
            &[&after.user_id],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(found, 1);
    for (projection, applied) in pipeline.applied().await {
        assert_eq!(
            applied, events,
            "{projection} applied each event once despite the re-publish"
        );
    }
    assert_eq!(
        pipeline.wait_for_stream(events as u64).await as i64,
        events,
        "everything was published again"
    );
    running.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_replay_rebuilds_a_model_identical_to_the_live_one() {
    let pipeline = Pipeline::start().await;
    let tenant = some_activity(&pipeline, 4).await;
    let user = pipeline.app.sign_up_user(tenant.tenant_id, "Leaving").await;
    let erased = pipeline
        .app
        .erase_user(tenant.tenant_id, user.user_id, &tenant.admin_token)
        .await;
    assert_eq!(erased.status, reqwest::StatusCode::OK);
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    running.stop().await;
    let live = pipeline.read_models_text().await;
    assert!(
        !live.contains("Leaving"),
        "the erased user is purged from every read model"
    );
    for projection in Projection::ALL {
        projector::replay::replay(&pipeline.pool, &pipeline.keys, projection, None, false)
            .await
            .expect("replay");
    }
    assert_eq!(pipeline.read_models_text().await, live);
    pipeline.finish().await;
}

#[tokio::test]
async fn a_tenant_replay_touches_only_that_tenants_rows() {
    let pipeline = Pipeline::start().await;
    let first = some_activity(&pipeline, 2).await;
    let second = some_activity(&pipeline, 2).await;
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    running.stop().await;
    let db = &pipeline.app.db;
    db.execute("UPDATE rm_users SET display_name = 'tampered'", &[])
        .await
        .expect("tamper");
    projector::replay::replay(
        &pipeline.pool,
        &pipeline.keys,
        Projection::Users,
        Some(first.tenant_id),
        false,
    )
    .await
    .expect("replay");
    let tampered = |tenant_id: uuid::Uuid| async move {
        db.query_one(
            "SELECT count(*) FILTER (WHERE display_name = 'tampered'), count(*) FROM rm_users WHERE tenant_id = $1",
            &[&tenant_id],
        )
        .await
        .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)))
        .expect("count")
    };
    assert_eq!(
        tampered(first.tenant_id).await,
        (0, 3),
        "the replayed tenant is rebuilt"
    );
    assert_eq!(
        tampered(second.tenant_id).await,
        (3, 3),
        "the other tenant is untouched"
    );
    pipeline.finish().await;
}

#[tokio::test]
async fn one_relay_leads_and_another_takes_over_when_it_dies() {
    let pipeline = Pipeline::start().await;
    let tenant = pipeline.app.sign_up_tenant("Leaders").await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let first = pipeline.relay();
    let first_shutdown = shutdown.clone();
    let first_task = tokio::spawn(async move { first.run(first_shutdown).await });
    let wait_published = |expected: i64| {
        let pipeline = &pipeline;
        async move {
            integration_tests::wait_until("the relay to publish every event", || async {
                pipeline.stream_messages().await as i64 >= expected
            })
            .await;
        }
    };
    wait_published(event_count(&pipeline).await).await;
    let second = pipeline.relay();
    let second_task = tokio::spawn(async move { second.run(shutdown).await });
    // Both relays have asked for the leadership.
    integration_tests::wait_until("the second relay to try for the leadership and be refused", || async {
        let tried: i64 = pipeline
            .app
            .db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity a
                  WHERE a.datname = current_database() AND a.state = 'idle'
                    AND a.query LIKE 'SELECT pg_try_advisory_lock%'
                    AND NOT EXISTS (SELECT 1 FROM pg_locks l
                                     WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        tried >= 1
    })
    .await;
    let leaders: i64 = pipeline
        .app
        .db
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database =
               (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .expect("locks")
        .get(0);
    assert_eq!(leaders, 1, "exactly one relay holds the leadership");
    first_task.abort();
    let _ = first_task.await;
    let _ = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Published By The Second")
        .await;
    wait_published(event_count(&pipeline).await).await;
    assert_eq!(
        pipeline.stream_messages().await as i64,
        event_count(&pipeline).await
    );
    let _ = stop.send(true);
    let _ = second_task.await;
    pipeline.finish().await;
}

#[tokio::test]
async fn messages_published_by_another_event_store_are_ignored() {
    let pipeline = Pipeline::start().await;
    let _ = some_activity(&pipeline, 1).await;
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    let applied = pipeline.applied().await;
    let models = pipeline.read_models_text().await;

    // A stream left over from another database: same subjects, events this store never had.
    let stream = pipeline
        .js
        .get_stream(&pipeline.settings.stream.name)
        .await
        .expect("stream");
    let original = stream.get_raw_message(1).await.expect("message");
    let mut envelope: serde_json::Value = serde_json::from_slice(&original.payload).expect("json");
    envelope["id"] = json!(uuid::Uuid::new_v4());
    envelope["tenantId"] = json!(uuid::Uuid::new_v4());
    envelope["position"] = json!(1_000_000);
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
    headers.insert("Eventra-Transaction-Id", "999999999");
    headers.insert("Eventra-Previous", "0/0");
    headers.insert("Eventra-Store", uuid::Uuid::new_v4().to_string().as_str());
    pipeline
        .js
        .publish_with_headers(
            original.subject.to_string(),
            headers,
            serde_json::to_vec(&envelope).expect("json").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    // A real event after it still arrives, and nothing of the foreign one does.
    let tenant = pipeline.app.sign_up_tenant("AfterForeign").await;
    pipeline.wait_for_projections().await;
    let tenants: i64 = pipeline
        .app
        .db
        .query_one(
            "SELECT count(*) FROM rm_tenants WHERE tenant_id = $1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(tenants, 1);
    let foreign: i64 = pipeline
        .app
        .db
        .query_one(
            "SELECT count(*) FROM rm_audit WHERE position = 1000000",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(foreign, 0);
    let checkpoint: i64 = pipeline
        .app
        .db
        .query_one("SELECT max(last_position) FROM projection_checkpoints", &[])
        .await
        .expect("max")
        .get(0);
    assert!(
        checkpoint < 1_000_000,
        "the foreign event did not move any checkpoint"
    );
    // Every projection counted exactly the store's events, and the rows are what the store
    // alone rebuilds: nothing of the foreign event is in them.
    let events = event_count(&pipeline).await;
    for (projection, count) in pipeline.applied().await {
        assert_eq!(count, events, "{projection} counted the foreign event");
    }
    assert!(applied.iter().all(|(_, count)| *count < events));
    running.stop().await;
    let live = pipeline.read_models_text().await;
    for row in models.lines() {
        assert!(live.contains(row), "a row changed: {row}");
    }
    pipeline
        .assert_rows_equal_a_rebuild_of(&Projection::ALL, "a foreign row is in the models")
        .await;
    pipeline.finish().await;
}

#[tokio::test]
async fn under_concurrent_writers_the_relay_publishes_every_event_once_in_each_streams_order() {
    let pipeline = std::sync::Arc::new(Pipeline::start().await);
    let tenant = pipeline.app.sign_up_tenant("Concurrent").await;
    let mut users = Vec::new();
    for index in 0..6 {
        users.push(
            pipeline
                .app
                .sign_up_user(tenant.tenant_id, &format!("Writer {index}"))
                .await,
        );
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let relay = pipeline.relay();
    let relay_task = tokio::spawn(async move { relay.run(shutdown).await });
    let mut writers = tokio::task::JoinSet::new();
    for user in users {
        let pipeline = std::sync::Arc::clone(&pipeline);
        writers.spawn(async move {
            for n in 0..15 {
                let answer = pipeline
                    .app
                    .update_me(&user.token, json!({"display_name": format!("Take {n}")}))
                    .await;
                assert_eq!(answer.status, reqwest::StatusCode::OK);
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        result.expect("writer");
    }
    let events = event_count(&pipeline).await;
    assert_eq!(pipeline.wait_for_stream(events as u64).await as i64, events);
    let _ = stop.send(true);
    let _ = relay_task.await;

    let stream = pipeline
        .js
        .get_stream(&pipeline.settings.stream.name)
        .await
        .expect("stream");
    let mut seen = std::collections::HashSet::new();
    let mut last_sequence: std::collections::HashMap<String, i64> =
        std::collections::HashMap::new();
    for number in 1..=events as u64 {
        let message = stream.get_raw_message(number).await.expect("message");
        let envelope: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        assert!(
            seen.insert(envelope["id"].as_str().unwrap_or_default().to_owned()),
            "published twice"
        );
        let aggregate = envelope["aggregateId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let sequence = envelope["sequence"].as_i64().expect("sequence");
        let previous = last_sequence
            .insert(aggregate.clone(), sequence)
            .unwrap_or(0);
        assert_eq!(
            sequence,
            previous + 1,
            "stream {aggregate} published out of order or with a gap"
        );
    }
    assert_eq!(seen.len() as i64, events);
    if let Ok(pipeline) = std::sync::Arc::try_unwrap(pipeline) {
        pipeline.finish().await;
    }
}

#[tokio::test]
async fn the_users_model_folded_for_replays_equals_the_live_one_and_the_rules() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Folded").await;
    let user = app.sign_up_user(tenant.tenant_id, "Fold Me").await;
    let leaving = app.sign_up_user(tenant.tenant_id, "Leaving").await;
    let me = |body: serde_json::Value| app.patch("/v1/me", Some(&user.token), body);
    assert_eq!(
        me(json!({"phone": "+4930123456", "locale": "de"}))
            .await
            .status,
        reqwest::StatusCode::OK
    );
    assert_eq!(
        me(json!({"phone": null, "display_name": "Folded"}))
            .await
            .status,
        reqwest::StatusCode::OK
    );
    let path = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, user.user_id);
    let admin = |body: serde_json::Value| app.patch(&path, Some(&tenant.admin_token), body);
    for body in [
        json!({"role": "admin"}),
        json!({"status": "deactivated"}),
        json!({"status": "active"}),
    ] {
        let answer = admin(body).await;
        assert_eq!(answer.status, reqwest::StatusCode::OK, "{:?}", answer.body);
    }
    let erased = app
        .erase_user(tenant.tenant_id, leaving.user_id, &tenant.admin_token)
        .await;
    assert_eq!(erased.status, reqwest::StatusCode::OK);
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    running.stop().await;

    // What the rules say the row is.
    let row = app
        .db
        .query_one(
            "SELECT display_name, phone, locale, role, status, version FROM rm_users WHERE user_id = $1",
            &[&user.user_id],
        )
        .await
        .expect("the user's row");
    assert_eq!(row.get::<_, String>(0), "Folded");
    assert_eq!(
        row.get::<_, Option<String>>(1),
        None,
        "the phone was cleared"
    );
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("de"));
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("admin"));
    assert_eq!(row.get::<_, String>(4), "active");
    let version = pipeline.app.stream_types(user.user_id).await.len() as i64;
    assert_eq!(row.get::<_, i64>(5), version);
    let gone = app
        .db
        .query_opt(
            "SELECT 1 FROM rm_users WHERE user_id = $1",
            &[&leaving.user_id],
        )
        .await
        .expect("query");
    assert!(gone.is_none(), "the erased user has no row");

    // The fold a replay uses, one event at a time, gives the table the live statements gave.
    let client = pipeline.pool.get().await.expect("connection");
    client
        .batch_execute("CREATE TABLE rm_users_single (LIKE rm_users INCLUDING ALL)")
        .await
        .expect("table");
    let events = eventstore::read_in_order(
        &client,
        &pipeline.keys,
        eventstore::ReadRange {
            limit: 10_000,
            ..Default::default()
        },
        true,
    )
    .await
    .expect("events");
    for event in &events {
        projector::projections::users_fold::apply(&client, std::slice::from_ref(event), "_single")
            .await
            .expect("apply");
    }
    let dump = |table: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    &format!("SELECT t::text FROM {table} t ORDER BY t::text"),
                    &[],
                )
                .await
                .expect("dump")
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(dump("rm_users_single").await, dump("rm_users").await);
    pipeline.finish().await;
}

/// The users model's row count for one tenant.
async fn users_of(db: &tokio_postgres::Client, tenant_id: uuid::Uuid) -> i64 {
    db.query_one(
        "SELECT count(*) FROM rm_users WHERE tenant_id = $1",
        &[&tenant_id],
    )
    .await
    .expect("count")
    .get(0)
}

#[tokio::test]
async fn readers_keep_the_old_rows_while_a_replay_runs_under_live_writes() {
    let pipeline = std::sync::Arc::new(Pipeline::start().await);
    let running = pipeline.spawn_projector_of(Projection::ALL.to_vec());
    let tenant = some_activity(&pipeline, 8).await;
    pipeline.wait_for_projections_of(&Projection::ALL).await;
    let before = users_of(&pipeline.app.db, tenant.tenant_id).await;
    assert_eq!(before, 9);

    // A reader runs throughout: users are only ever added, so the count it sees never drops.
    let (stop_reading, reading) = tokio::sync::watch::channel(false);
    let reader = {
        let database_url = pipeline.app.database_url.clone();
        let tenant_id = tenant.tenant_id;
        tokio::spawn(async move {
            let db = integration_tests::connect(&database_url).await;
            let (mut last, mut reads) = (0, 0);
            while !*reading.borrow() {
                let seen = users_of(&db, tenant_id).await;
                assert!(seen >= last, "a reader saw {seen} users after {last}");
                assert!(seen >= 9, "a reader saw a partial model: {seen} users");
                last = seen;
                reads += 1;
            }
            reads
        })
    };
    // The replay is held at its switch: the rebuilt rows wait beside the live ones.
    let holder = integration_tests::connect(&pipeline.app.database_url).await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder
        .execute(
            "SELECT 1 FROM projection_checkpoints WHERE projection = 'users' FOR UPDATE",
            &[],
        )
        .await
        .expect("hold the checkpoint");
    let replay = {
        let pipeline = std::sync::Arc::clone(&pipeline);
        tokio::spawn(async move {
            projector::replay::replay(
                &pipeline.pool,
                &pipeline.keys,
                Projection::Users,
                None,
                false,
            )
            .await
            .expect("replay")
        })
    };
    // (Observed from another connection: the holder's transaction sees a frozen snapshot
    // of the activity statistics.)
    integration_tests::wait_until("the replay to wait at its switch", || async {
        let staged: bool = pipeline
            .app
            .db
            .query_one("SELECT to_regclass('rm_users_staging') IS NOT NULL", &[])
            .await
            .expect("staging")
            .get(0);
        let waiting = pipeline.app.lock_waiters().await;
        staged && waiting > 0
    })
    .await;
    // Writes go on meanwhile; readers still see every old row.
    for index in 0..4 {
        pipeline
            .app
            .sign_up_user(tenant.tenant_id, &format!("During {index}"))
            .await;
    }
    assert_eq!(users_of(&pipeline.app.db, tenant.tenant_id).await, before);
    assert!(!replay.is_finished());
    holder.batch_execute("ROLLBACK").await.expect("release");
    replay.await.expect("the replay");
    pipeline.wait_for_projections_of(&Projection::ALL).await;
    assert_eq!(
        users_of(&pipeline.app.db, tenant.tenant_id).await,
        before + 4
    );
    let _ = stop_reading.send(true);
    assert!(reader.await.expect("the reader") > 0);
    running.stop().await;
    pipeline
        .assert_rows_equal_a_rebuild_of(&[Projection::Users], "the switched-in model is whole")
        .await;
    if let Ok(pipeline) = std::sync::Arc::try_unwrap(pipeline) {
        pipeline.finish().await;
    }
}

#[tokio::test]
async fn a_projection_whose_database_fails_retries_and_never_skips_an_event() {
    // (A renamed table would not do: prepared statements follow the table, not its name.)
    let pipeline = Pipeline::start().await;
    let running = pipeline.spawn_projector_of(Projection::ALL.to_vec());
    let tenant = some_activity(&pipeline, 1).await;
    pipeline.wait_for_projections_of(&Projection::ALL).await;
    // The users model's writes fail as on a full disk: it is not the events' fault.
    pipeline
        .app
        .db
        .batch_execute(
            "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'could not extend file (a test)' USING ERRCODE = '53100'; END $$;
             CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE OR DELETE ON rm_users
               FOR EACH ROW EXECUTE FUNCTION disk_full();",
        )
        .await
        .expect("the failure");
    let later = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "While Away")
        .await;
    let head = event_count(&pipeline).await;
    // The other projections move on; users stays behind, retrying.
    integration_tests::wait_until("the audit projection to apply the later events", || async {
        pipeline
            .applied()
            .await
            .iter()
            .any(|(name, applied)| name == "audit" && *applied == head)
    })
    .await;
    let users_applied = |applied: &[(String, i64)]| {
        applied
            .iter()
            .find(|(name, _)| name == "users")
            .map(|(_, count)| *count)
    };
    assert!(users_applied(&pipeline.applied().await) < Some(head));
    let letters = projector::dead_letters::list(&pipeline.pool, None, 10)
        .await
        .expect("list");
    assert!(
        letters.is_empty(),
        "a database failure dead-lettered: {letters:?}"
    );
    pipeline
        .app
        .db
        .batch_execute("DROP TRIGGER disk_full ON rm_users")
        .await
        .expect("space again");
    pipeline.wait_for_projections_of(&Projection::ALL).await;
    assert_eq!(users_applied(&pipeline.applied().await), Some(head));
    let name = pipeline
        .app
        .projected_name(later.user_id)
        .await
        .expect("the later user is projected");
    assert_eq!(name, "While Away");
    assert!(
        projector::dead_letters::list(&pipeline.pool, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    running.stop().await;
    pipeline
        .assert_rows_equal_a_rebuild_of(&[Projection::Users], "an event was skipped")
        .await;
    pipeline.finish().await;
}

#[tokio::test]
async fn personal_fields_stay_encrypted_in_the_stream() {
    let pipeline = Pipeline::start().await;
    let tenant = pipeline.app.sign_up_tenant("Sealed").await;
    let user = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Secretive Sam")
        .await;
    let update = pipeline
        .app
        .update_me(
            &user.token,
            json!({"display_name": "Secretive Samuel", "phone": "+4915100011122"}),
        )
        .await;
    assert_eq!(update.status, reqwest::StatusCode::OK);
    let events = event_count(&pipeline).await;
    assert_eq!(pipeline.relay_until(events as usize).await as i64, events);
    let stream = pipeline
        .js
        .get_stream(&pipeline.settings.stream.name)
        .await
        .expect("stream");
    let mut sealed_fields = 0;
    for sequence in 1..=pipeline.stream_messages().await {
        let message = stream.get_raw_message(sequence).await.expect("message");
        let payload = String::from_utf8_lossy(&message.payload).into_owned();
        for secret in [
            user.email.as_str(),
            tenant.admin_email.as_str(),
            "Secretive",
            "Sealed Admin",
            "4915100011122",
            "argon2",
        ] {
            assert!(
                !payload.contains(secret),
                "{secret} is in clear in the stream: {payload}"
            );
        }
        let envelope: serde_json::Value = serde_json::from_str(&payload).expect("json");
        for field in ["email", "display_name", "phone", "password_hash"] {
            if let Some(value) = envelope["data"][field].as_str() {
                assert!(value.starts_with("pii:v1:"), "{field} = {value}");
                sealed_fields += 1;
            }
        }
    }
    assert!(
        sealed_fields >= 6,
        "the personal fields were seen sealed: {sealed_fields}"
    );
    pipeline.finish().await;
}

#[tokio::test]
async fn the_search_index_killed_with_its_projector_in_process_resumes_equal_to_the_store() {
    let pipeline = std::sync::Arc::new(Pipeline::start().await);
    let writer = {
        let pipeline = std::sync::Arc::clone(&pipeline);
        tokio::spawn(async move { some_activity(&pipeline, 40).await })
    };
    // The whole projector, search included, dropped wherever it is, again and again while
    // the writes go on; each kill lands at another moment of the index's batches.
    let mut kills = 0u64;
    while !writer.is_finished() {
        let running = pipeline.spawn_projector();
        tokio::time::sleep(Duration::from_millis(10 + (53 * kills) % 250)).await;
        running.kill().await;
        kills += 1;
    }
    let tenant = writer.await.expect("the writer");
    assert!(kills > 3, "the projector was killed {kills} times");
    let running = pipeline.spawn_projector();
    // Caught up, by the index's own checkpoint and by what `projector status` reports.
    pipeline.wait_for_projections().await;
    running.stop().await;
    pipeline
        .assert_search_index_equals_the_store(&pipeline.settings.search_dir, tenant.tenant_id)
        .await;
    if let Ok(pipeline) = std::sync::Arc::try_unwrap(pipeline) {
        pipeline.finish().await;
    }
}
