use integration_tests::{TestApp, connect, fresh_database};

#[tokio::test]
async fn migrations_are_safe_to_run_twice_and_concurrently() {
    let database_url = fresh_database().await;
    let runs = futures_join(&database_url).await;
    let mut applied: Vec<i32> = runs.into_iter().flatten().collect();
    applied.sort_unstable();
    assert_eq!(
        applied,
        (1..=infra::migrate::MIGRATIONS.len() as i32).collect::<Vec<_>>(),
        "each migration is applied by exactly one runner"
    );
    let again = infra::migrate::migrate_database(&database_url)
        .await
        .expect("migrate again");
    assert!(again.is_empty());
    let db = connect(&database_url).await;
    let count: i64 = db
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, infra::migrate::MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn several_processes_starting_on_a_server_without_the_database_all_come_up() {
    // A URL naming a database that does not exist yet: every runner tries to create it.
    let existing = fresh_database().await;
    let base = existing.rsplit_once('/').expect("a database URL").0;
    let database_url = format!("{base}/eventra_test_{}", uuid::Uuid::new_v4().simple());
    let runs = futures_join(&database_url).await;
    let applied: usize = runs.iter().map(Vec::len).sum();
    assert_eq!(applied, infra::migrate::MIGRATIONS.len());
}

async fn futures_join(database_url: &str) -> Vec<Vec<i32>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = database_url.to_owned();
        tasks.spawn(async move {
            infra::migrate::migrate_database(&url)
                .await
                .expect("migrate")
        });
    }
    let mut results = Vec::new();
    while let Some(result) = tasks.join_next().await {
        results.push(result.expect("task"));
    }
    results
}

#[tokio::test]
async fn events_cannot_be_updated_or_deleted() {
    let app = TestApp::spawn().await;
    let _ = app.sign_up_tenant("Immutable").await;
    for statement in [
        "UPDATE events SET type = 'user.hacked'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = app.db.batch_execute(statement).await.expect_err(statement);
        assert!(
            error.to_string().contains("immutable") || format!("{error:?}").contains("immutable"),
            "{error:?}"
        );
    }
    assert!(app.event_count().await > 0);
}
