//! The operator commands, run as an operator runs them: the built binaries.

use std::path::PathBuf;
use std::process::Command;

use integration_tests::Pipeline;

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

    let (ok, stdout, stderr) = run(&pipeline, "projector", &["replay", "users"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("replayed users"), "{stdout}");
    let tenant_arg = tenant.tenant_id.to_string();
    let (ok, stdout, stderr) = run(
        &pipeline,
        "projector",
        &["replay", "audit", "--tenant", &tenant_arg],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&tenant_arg), "{stdout}");

    let (ok, stdout, stderr) = run(&pipeline, "projector", &["dead-letters", "list"]);
    assert!(ok, "{stderr}");
    assert!(stdout.trim().is_empty(), "{stdout}");

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
