//! A projector applies all its projections from one consumer, one transaction per batch
//! (ADR 32); the isolation of a projection failing on its own is
//! `projector::a_projection_whose_database_fails_retries_and_never_skips_an_event`.

use async_nats::jetstream::consumer;
use integration_tests::Pipeline;
use projector::projections::Projection;
use serde_json::json;

#[tokio::test]
async fn the_projections_of_a_projector_share_one_consumer_and_each_message_is_delivered_once() {
    let pipeline = Pipeline::start().await;
    // Consumers an earlier version kept per projection, left on the stream.
    let stream = projector::stream::ensure_stream(&pipeline.js, &pipeline.settings.stream)
        .await
        .expect("stream");
    for projection in [Projection::Users, Projection::Audit] {
        let name = pipeline.settings.stream.consumer_name(projection.name());
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("an old consumer");
    }
    assert_eq!(pipeline.consumers().await.len(), 2);

    let running = pipeline.spawn_projector();
    let tenant = pipeline.app.sign_up_tenant("Grouped").await;
    for index in 0..4 {
        let user = pipeline
            .app
            .sign_up_user(tenant.tenant_id, &format!("Member {index}"))
            .await;
        let update = pipeline
            .app
            .update_me(&user.token, json!({"locale": "de"}))
            .await;
        assert_eq!(update.status, reqwest::StatusCode::OK);
    }
    pipeline.wait_for_projections().await;

    let group: Vec<Projection> = Projection::EVERY
        .into_iter()
        .filter(|p| *p != Projection::Search)
        .collect();
    let expected = pipeline
        .settings
        .stream
        .consumer_name(&projector::runtime::group_name(&group));
    let messages = pipeline.stream_messages().await;
    integration_tests::wait_until("the group's consumer to acknowledge everything", || async {
        let consumers = pipeline.consumers().await;
        let [only] = consumers.as_slice() else {
            return false;
        };
        let mut only = only.clone();
        only.info().await.is_ok_and(|info| {
            info.ack_floor.stream_sequence == messages && info.num_ack_pending == 0
        })
    })
    .await;
    let mut consumers = pipeline.consumers().await;
    assert_eq!(consumers.len(), 1, "the old consumers are gone");
    let info = consumers[0].info().await.expect("info").clone();
    assert_eq!(info.name, expected);
    // Every message once, for all the projections together.
    assert_eq!(info.delivered.stream_sequence, messages);
    assert_eq!(info.num_redelivered, 0);
    let events = pipeline.app.event_count().await;
    for (projection, applied) in pipeline.applied().await {
        assert_eq!(applied, events, "{projection} applied each event once");
    }
    running.stop().await;
    pipeline
        .assert_rows_equal_a_rebuild_of(&Projection::ALL, "a projection of the group")
        .await;
    pipeline.finish().await;
}
