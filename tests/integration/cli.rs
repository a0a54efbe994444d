//! The operator commands, run as an operator runs them: the built binaries.

use std::path::PathBuf;
use std::process::Command;

use integration_tests::Pipeline;
use projector::projections::Projection;

pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir")
        .join(name);
    assert!(
        binary.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; scripts/test does)",
        binary.display()
    );
    binary
}

pub(crate) fn run(pipeline: &Pipeline, name: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary(name))
        .args(args)
        .env("DATABASE_URL", &pipeline.app.database_url)
        .env(
            "EVENTRA_MASTER_KEY",
            pipeline
                .app
                .settings
                .master_key
                .as_ref()
                .expect("key")
                .expose(),
        )
        .env("EVENTRA_DATA_DIR", &pipeline.app.settings.data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the binary");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The users model's rows of one user.
async fn pill_rows(pipeline: &Pipeline, user_id: uuid::Uuid) -> i64 {
    pipeline
        .app
        .db
        .query_one(
            "SELECT count(*) FROM rm_users WHERE user_id = $1",
            &[&user_id],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn operators_see_status_replay_and_list_dead_letters_from_the_command_line() {
    let pipeline = Pipeline::start().await;
    let tenant = pipeline.app.sign_up_tenant("Operated").await;
    let running = pipeline.spawn_projector();
    pipeline.wait_for_projections().await;
    running.stop().await;

    let (ok, stdout, stderr) = run(&pipeline, "projector", &["status", "--json"]);
    assert!(ok, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    let events = pipeline.app.event_count().await;
    assert_eq!(status["head_position"].as_i64(), Some(events));
    assert!(
        status["projections"]
            .as_array()
            .expect("projections")
            .iter()
            .all(|p| p["lag_events"] == 0)
    );

    let (ok, stdout, stderr) = run(&pipeline, "projector", &["status"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("users") && stdout.contains("lag"),
        "{stdout}"
    );

    let before = pipeline.read_models_text().await;
    assert!(before.contains("Operated Admin"), "{before}");
    let (ok, stdout, stderr) = run(&pipeline, "projector", &["replay", "users"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("replayed users"), "{stdout}");
    assert_eq!(
        pipeline.read_models_text().await,
        before,
        "a replay rebuilds the same rows"
    );
    let tenant_arg = tenant.tenant_id.to_string();
    let (ok, stdout, stderr) = run(
        &pipeline,
        "projector",
        &["replay", "audit", "--tenant", &tenant_arg],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&tenant_arg), "{stdout}");
    assert_eq!(pipeline.read_models_text().await, before);

    let (ok, stdout, stderr) = run(&pipeline, "projector", &["dead-letters", "list"]);
    assert!(ok, "{stderr}");
    assert!(stdout.trim().is_empty(), "{stdout}");

    // A bug in the read model (here a constraint an operator added by mistake) dead-letters
    // an event; once it is fixed, a retry applies the event.
    pipeline
        .app
        .db
        .batch_execute(
            "ALTER TABLE rm_users ADD CONSTRAINT operator_mistake
               CHECK (display_name <> 'Poison Pill') NOT VALID",
        )
        .await
        .expect("the mistake");
    let running = pipeline.spawn_projector();
    let pill = pipeline
        .app
        .sign_up_user(tenant.tenant_id, "Poison Pill")
        .await;
    // And a message that is no event at all, to be discarded.
    pipeline
        .publish_garbage(tenant.tenant_id, "{not an envelope")
        .await;
    pipeline.wait_for_projections().await;
    integration_tests::wait_until("the users projection to dead-letter both", || async {
        projector::dead_letters::list(&pipeline.pool, Some(Projection::Users), 10)
            .await
            .is_ok_and(|letters| letters.len() == 2)
    })
    .await;
    running.stop().await;
    let (ok, stdout, stderr) = run(
        &pipeline,
        "projector",
        &["dead-letters", "list", "--projection", "users"],
    );
    assert!(ok, "{stderr}");
    let letters: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a dead letter as JSON"))
        .collect();
    assert_eq!(letters.len(), 2, "{stdout}");
    let event_letter = letters
        .iter()
        .find(|l| l["event_id"].is_string())
        .expect("the event's dead letter");
    assert!(
        event_letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("operator_mistake")),
        "{event_letter}"
    );
    let message_letter = letters
        .iter()
        .find(|l| l["event_id"].is_null())
        .expect("the message's dead letter");
    assert_eq!(pill_rows(&pipeline, pill.user_id).await, 0);

    pipeline
        .app
        .db
        .batch_execute("ALTER TABLE rm_users DROP CONSTRAINT operator_mistake")
        .await
        .expect("the fix");
    let id = event_letter["id"].to_string();
    let (ok, stdout, stderr) = run(&pipeline, "projector", &["dead-letters", "retry", &id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("applied and removed"), "{stdout}");
    assert_eq!(
        pill_rows(&pipeline, pill.user_id).await,
        1,
        "the retried event applied"
    );
    let id = message_letter["id"].to_string();
    let (ok, _, stderr) = run(&pipeline, "projector", &["dead-letters", "retry", &id]);
    assert!(!ok, "a malformed message cannot be retried");
    assert!(stderr.contains("discard it"), "{stderr}");
    let (ok, stdout, stderr) = run(&pipeline, "projector", &["dead-letters", "discard", &id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("discarded"), "{stdout}");
    // The other projections dead-lettered the same message; discarded, nothing is left.
    let (ok, stdout, stderr) = run(&pipeline, "projector", &["dead-letters", "list"]);
    assert!(ok, "{stderr}");
    for line in stdout.lines() {
        let letter: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert!(letter["event_id"].is_null(), "{letter}");
        assert_eq!(letter["subject"], message_letter["subject"]);
        let id = letter["id"].to_string();
        let (ok, _, stderr) = run(&pipeline, "projector", &["dead-letters", "discard", &id]);
        assert!(ok, "{stderr}");
    }
    let (ok, stdout, stderr) = run(&pipeline, "projector", &["dead-letters", "list"]);
    assert!(ok, "{stderr}");
    assert!(stdout.trim().is_empty(), "nothing is left: {stdout}");

    let (ok, _, stderr) = run(&pipeline, "projector", &["replay", "everything"]);
    assert!(!ok);
    assert!(stderr.contains("invalid value"), "{stderr}");
    let (ok, _, stderr) = run(&pipeline, "projector", &["dead-letters", "discard", "42"]);
    assert!(!ok);
    assert!(stderr.contains("no dead letter 42"), "{stderr}");
    let (ok, _, stderr) = run(
        &pipeline,
        "command-api",
        &["grant-platform-admin", "not-an-id"],
    );
    assert!(!ok);
    assert!(stderr.contains("usage"), "{stderr}");
    let user = tenant.admin_id.to_string();
    let (ok, stdout, stderr) = run(&pipeline, "command-api", &["grant-platform-admin", &user]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("platform administrator"), "{stdout}");
    pipeline.finish().await;
}
