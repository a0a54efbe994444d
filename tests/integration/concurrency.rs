use std::sync::Arc;

use chrono::Utc;
use domain::{DomainEvent, UserEvent};
use eventstore::EventMetadata;
use eventstore::{Changes, EventStore, ExpectedVersion, StoreError};
use infra::crypto::{KeyRing, MasterKey};
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
                event: UserEvent::profile_updated(
                    user_id,
                    None,
                    None,
                    Some(locale.into()),
                    user_id,
                )
                .expect("a change"),
            };
            let result = unit
                .append(
                    Changes::of_events(
                        tenant.tenant_id,
                        Utc::now(),
                        &[ExpectedVersion {
                            aggregate_id: user_id,
                            version,
                        }],
                        vec![event],
                    ),
                    &EventMetadata {
                        source: "test".into(),
                        ..Default::default()
                    },
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

/// More re-decisions than concurrent writers of one stream: each conflict a command meets
/// is another command's commit, so with `n` writers none needs more than `n - 1` retries.
const RETRIES_ABOVE_CONTENTION: u32 = 16;

#[tokio::test]
async fn concurrent_profile_updates_are_re_decided_and_none_is_lost() {
    let app = Arc::new(
        TestApp::spawn_with(|settings| settings.command_retries = RETRIES_ABOVE_CONTENTION).await,
    );
    let tenant = app.sign_up_tenant("Concurrent").await;
    let user = app.sign_up_user(tenant.tenant_id, "Busy").await;
    let writers = 8;
    let mut tasks = JoinSet::new();
    for index in 0..writers {
        let app = Arc::clone(&app);
        let token = user.token.clone();
        tasks.spawn(async move {
            let name = format!("Name {index}");
            let answer = app.update_me(&token, json!({"display_name": name})).await;
            (name, answer)
        });
    }
    let mut versions = Vec::new();
    let mut written = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let (name, answer) = answer.expect("task");
        // Each loser of a race decides again against the winner's state, so every update
        // goes through: a 409 here means a conflict was answered instead of re-decided.
        assert_eq!(answer.status, StatusCode::OK, "{name}: {:?}", answer.body);
        versions.push(answer.body["version"].as_i64().expect("version"));
        written.push(name);
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), writers, "no two successes share a version");
    // Every name written is in the stream, once, as the event its answer acknowledged.
    let mut stored: Vec<String> = app
        .decrypted_stream("user", user.user_id)
        .await
        .into_iter()
        .filter(|e| e.event_type == "user.profile_updated")
        .map(|e| {
            e.data["display_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    stored.sort();
    written.sort();
    assert_eq!(stored, written, "every success is exactly its own event");
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
    let started = std::time::Instant::now();
    while started.elapsed() < integration_tests::WAIT_LIMIT {
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

/// A large append goes out as one statement: its positions follow its order, the
/// authentication state follows its events, and one stale stream in it is a conflict on
/// that stream that writes nothing.
#[tokio::test]
async fn a_large_append_is_one_statement_in_order_and_a_stale_stream_in_it_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Large").await;
    let member = app.sign_up_user(tenant.tenant_id, "Member").await;
    let store = store_of(&app);
    let metadata = EventMetadata {
        source: "test".into(),
        ..Default::default()
    };
    let role_changed = |old_role, new_role| DomainEvent::User {
        user_id: member.user_id,
        event: UserEvent::MemberRoleChanged {
            tenant_id: tenant.tenant_id,
            user_id: member.user_id,
            old_role,
            new_role,
            changed_by: tenant.admin_id,
        },
    };
    // Twenty events on two streams, the member's role changed twice among them.
    let mut events: Vec<DomainEvent> = (0..9)
        .map(|n| profile_updated(tenant.admin_id, if n % 2 == 0 { "en" } else { "de" }))
        .collect();
    events.push(role_changed(domain::Role::Member, domain::Role::Admin));
    events.extend((0..9).map(|_| profile_updated(member.user_id, "fr")));
    events.push(role_changed(domain::Role::Admin, domain::Role::Member));
    events.push(role_changed(domain::Role::Member, domain::Role::Admin));
    let expected = [
        ExpectedVersion {
            aggregate_id: tenant.admin_id,
            version: 2,
        },
        ExpectedVersion {
            aggregate_id: member.user_id,
            version: 2,
        },
    ];
    let transaction = store.begin().await.expect("begin");
    let appended = transaction
        .append(
            Changes::of_events(tenant.tenant_id, Utc::now(), &expected, events.clone()),
            &metadata,
        )
        .await
        .expect("append");
    transaction.commit().await.expect("commit");
    assert_eq!(appended.len(), 21);
    let positions: Vec<i64> = appended.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "positions follow the order of the append: {positions:?}"
    );
    let member_sequences: Vec<i64> = appended
        .iter()
        .filter(|e| e.aggregate_id == member.user_id)
        .map(|e| e.sequence)
        .collect();
    assert_eq!(member_sequences, (3..=14).collect::<Vec<i64>>());
    let role: String = app
        .db
        .query_one(
            "SELECT role FROM auth_principals WHERE user_id = $1",
            &[&member.user_id],
        )
        .await
        .expect("principal")
        .get(0);
    assert_eq!(role, "admin", "the last of the role changes holds");

    // The same events again at the versions of before: the admin's stream moved on.
    let before: i64 = app
        .db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("count")
        .get(0);
    let transaction = store.begin().await.expect("begin");
    let result = transaction
        .append(
            Changes::of_events(tenant.tenant_id, Utc::now(), &expected, events),
            &metadata,
        )
        .await;
    transaction.rollback().await;
    match result {
        Err(StoreError::Conflict { aggregate_id, .. }) => {
            assert!(
                aggregate_id == tenant.admin_id || aggregate_id == member.user_id,
                "the conflict names a stream of the append"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let after: i64 = app
        .db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(before, after, "nothing of the stale append was written");
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

fn profile_updated(user_id: uuid::Uuid, locale: &str) -> DomainEvent {
    DomainEvent::User {
        user_id,
        event: UserEvent::profile_updated(user_id, None, None, Some(locale.into()), user_id)
            .expect("a change"),
    }
}

#[tokio::test]
async fn grouped_appends_commit_together_and_a_conflict_fails_only_its_own_command() {
    let app = TestApp::spawn().await;
    let store = store_of(&app);
    let tenant_id = uuid::Uuid::now_v7();
    let contested = uuid::Uuid::now_v7();
    let before = app.event_count().await;
    let mut tasks = JoinSet::new();
    for n in 0..60 {
        let store = store.clone();
        // Every sixth command decides on the same stream at the same version.
        let user_id = if n % 6 == 0 {
            contested
        } else {
            uuid::Uuid::now_v7()
        };
        tasks.spawn(async move {
            let unit = store.begin_grouped();
            let result = unit
                .append(
                    Changes::of_events(
                        tenant_id,
                        Utc::now(),
                        &[ExpectedVersion {
                            aggregate_id: user_id,
                            version: 0,
                        }],
                        vec![profile_updated(user_id, "en")],
                    ),
                    &EventMetadata::default(),
                )
                .await
                .map(|(appended, transaction)| {
                    assert!(
                        transaction.is_none(),
                        "a group commit leaves nothing to commit"
                    );
                    appended
                });
            (user_id, result)
        });
    }
    let mut positions = Vec::new();
    let (mut contested_won, mut contested_lost) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (user_id, result) = joined.expect("task");
        match result {
            Ok(appended) => {
                assert_eq!(appended.len(), 1);
                assert_eq!(appended[0].sequence, 1);
                positions.push(appended[0].position);
                if user_id == contested {
                    contested_won += 1;
                }
            }
            Err(StoreError::Conflict { aggregate_id, .. }) => {
                assert_eq!(
                    aggregate_id, contested,
                    "only the contested stream conflicts"
                );
                contested_lost += 1;
            }
            Err(error) => panic!("unexpected: {error}"),
        }
    }
    assert_eq!((contested_won, contested_lost), (1, 9));
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), 51, "every winner has its own position");
    assert_eq!(
        app.event_count().await - before,
        51,
        "nothing else was written"
    );
    assert_eq!(app.stream_types(contested).await.len(), 1);
}

#[tokio::test]
async fn a_transaction_held_open_on_one_stream_does_not_stall_grouped_commands_on_others() {
    // Enough re-decisions that the blocked command is still waiting (each attempt waits out
    // the writer's 500 ms lock timeout) long after the free one could have answered; few
    // enough that the transaction held open, which holds the server-wide visibility horizon
    // back for every test running beside this one, ends soon.
    let retries = 6;
    let app = Arc::new(TestApp::spawn_with(|settings| settings.command_retries = retries).await);
    let tenant = app.sign_up_tenant("Held").await;
    let blocked = app.sign_up_user(tenant.tenant_id, "Blocked").await;
    let free = app.sign_up_user(tenant.tenant_id, "Free").await;
    let version = app.stream_types(blocked.user_id).await.len() as i64;
    // Another transaction takes the blocked user's next sequence and stays open.
    let holder = integration_tests::connect(&app.database_url).await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder
        .execute(
            "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, sequence, type,
                                 version, data, metadata, occurred_at)
             VALUES (gen_random_uuid(), $1, 'user', $2, $3, 'user.profile_updated', 1,
                     '{}'::jsonb, '{}'::jsonb, now())",
            &[&tenant.tenant_id, &blocked.user_id, &(version + 1)],
        )
        .await
        .expect("the held insert");
    let patch = |token: String| {
        let app = Arc::clone(&app);
        async move { app.update_me(&token, json!({"locale": "de"})).await }
    };
    let blocked_request = tokio::spawn(patch(blocked.token.clone()));
    // The blocked command is waiting on the held row.
    // (Observed from another connection: the holder's transaction sees a frozen snapshot
    // of the activity statistics.)
    integration_tests::wait_until("a command waiting on the held row lock", || async {
        let waiting = app.lock_waiters().await;
        waiting > 0
    })
    .await;
    let started = std::time::Instant::now();
    let free_answer =
        tokio::time::timeout(integration_tests::WAIT_LIMIT, patch(free.token.clone()))
            .await
            .expect("the free command answers while the other stream is held");
    let free_latency = started.elapsed();
    assert_eq!(free_answer.status, StatusCode::OK, "{:?}", free_answer.body);
    assert!(
        !blocked_request.is_finished(),
        "the free command (answered in {free_latency:?}) was held up until the blocked one ended"
    );
    // The blocked one counts each lock wait as a conflict and gives up after its retries
    // with a clean 409, changing nothing.
    let blocked_answer = blocked_request.await.expect("the blocked request");
    assert_eq!(
        blocked_answer.status,
        StatusCode::CONFLICT,
        "{:?}",
        blocked_answer.body
    );
    assert!(blocked_answer.is_problem());
    holder.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(
        app.stream_types(blocked.user_id).await.len() as i64,
        version
    );
    // Released: the blocked user's command goes through.
    let answer = patch(blocked.token.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        app.stream_types(blocked.user_id).await.len() as i64,
        version + 1
    );
}

#[tokio::test]
async fn many_users_updating_at_once_each_get_every_update_exactly_once() {
    let app = Arc::new(
        TestApp::spawn_with(|settings| settings.command_retries = RETRIES_ABOVE_CONTENTION).await,
    );
    let tenant = app.sign_up_tenant("Many").await;
    let mut users = Vec::new();
    for n in 0..12 {
        users.push(
            app.sign_up_user(tenant.tenant_id, &format!("Many {n}"))
                .await,
        );
    }
    let updates_per_user = 4;
    let mut tasks = JoinSet::new();
    for user in &users {
        for update in 0..updates_per_user {
            let (app, token) = (Arc::clone(&app), user.token.clone());
            tasks.spawn(async move {
                app.update_me(&token, json!({"display_name": format!("Name {update}")}))
                    .await
            });
        }
    }
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.expect("task");
        // The same user's updates race each other; each loser is re-decided, so every one
        // goes through (the retry bound is above the contention).
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    for user in &users {
        let types = app.stream_types(user.user_id).await;
        // Each of a user's updates names a different display name than the state it was
        // decided against, so each success appended exactly one event, and nothing else was.
        assert_eq!(
            types,
            std::iter::once("user.created")
                .chain(std::iter::once("tenant.member_joined"))
                .chain(std::iter::repeat_n(
                    "user.profile_updated",
                    updates_per_user
                ))
                .collect::<Vec<_>>(),
            "{}",
            user.email
        );
    }
}

/// A user erased through one API instance is forgotten by every other at once: the state
/// another instance kept (with the user's decrypted name and address) goes when the erasure
/// commits, and what it keeps of others stays.
#[tokio::test]
async fn an_erasure_through_one_instance_makes_every_other_forget_what_it_kept() {
    let app = TestApp::spawn().await;
    let tenant = app.sign_up_tenant("Forgetful").await;
    let erased = app.sign_up_user(tenant.tenant_id, "Kept Person").await;
    let staying = app.sign_up_user(tenant.tenant_id, "Staying Person").await;
    // Another instance: a store of its own, listening for erasures.
    let other = store_of(&app);
    tokio::spawn(other.clone().forget_erased(app.database_url.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for user_id in [erased.user_id, staying.user_id] {
        let unit = other.begin_grouped();
        let loaded = unit.reader().load::<domain::User>(user_id).await;
        assert!(loaded.is_ok(), "{loaded:?}");
        unit.rollback().await;
        assert!(other.keeps(user_id), "the other instance keeps the user");
    }
    let answer = app.erase(&tenant, erased.user_id).await;
    assert!(answer.status.is_success(), "{:?}", answer.body);
    integration_tests::wait_until("the other instance forgets the erased user", || async {
        !other.keeps(erased.user_id)
    })
    .await;
    assert!(
        other.keeps(staying.user_id),
        "only the erased user is forgotten"
    );
}
