//! The keys are required (ADR 0021): the built binaries, started as an operator would start
//! them, refuse to run without the master key or the token signing key (unless
//! `EVENTRA_DEV=1`),
//! and with a master key other than the one the database's data keys are wrapped under;
//! and configuration never prints a secret.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use infra::crypto::MasterKey;
use integration_tests::{TestApp, WAIT_LIMIT};

/// A service binary with the test's database and a data dir of its own, on free ports, with
/// none of the key variables unless given.
fn service(app: &TestApp, name: &str, keys: &[(&str, &str)]) -> Command {
    let mut command = Command::new(crate::cli::binary(name));
    if name == "projector" {
        command.arg("run");
    }
    command
        .env_remove("EVENTRA_MASTER_KEY")
        .env_remove("JWT_SIGNING_KEY")
        .env_remove("EVENTRA_DEV")
        .env("DATABASE_URL", &app.database_url)
        .env(
            "EVENTRA_DATA_DIR",
            app.settings.data_dir.join(format!("{name}-own")),
        )
        .env("COMMAND_API_ADDR", "127.0.0.1:0")
        .env("QUERY_API_ADDR", "127.0.0.1:0")
        .env("PROJECTOR_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (variable, value) in keys {
        command.env(variable, value);
    }
    command
}

/// Runs the service until it exits (it must, and soon): its success and its error output.
fn refused(mut command: Command) -> String {
    let mut child = command.spawn().expect("start the service");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            assert!(!status.success(), "the service must refuse to start");
            return String::from_utf8_lossy(&output.stderr).into_owned();
        }
        if started.elapsed() > WAIT_LIMIT {
            let _ = child.kill();
            panic!("the service started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn without_the_keys_every_service_refuses_to_start_and_makes_no_key_of_its_own() {
    let app = TestApp::spawn().await;
    let signing = MasterKey::generate().expect("rng").to_base64();
    let master = MasterKey::generate().expect("rng").to_base64();
    // The query API holds no key at all: it verifies tokens with the public keys.
    for (name, keys, missing) in [
        (
            "command-api",
            vec![("JWT_SIGNING_KEY", signing.as_str())],
            "EVENTRA_MASTER_KEY",
        ),
        (
            "command-api",
            vec![("EVENTRA_MASTER_KEY", master.as_str())],
            "JWT_SIGNING_KEY",
        ),
        ("projector", vec![], "EVENTRA_MASTER_KEY"),
    ] {
        let errors = refused(service(&app, name, &keys));
        assert!(
            errors.contains(&format!("{missing} is not set")) && errors.contains("EVENTRA_DEV=1"),
            "{name} names what is missing and the way out: {errors}"
        );
        let own = app.settings.data_dir.join(format!("{name}-own"));
        for file in ["master.key", "token-signing.key"] {
            assert!(!own.join(file).exists(), "{name} made up {file}");
        }
    }
}

#[tokio::test]
async fn a_master_key_other_than_the_databases_is_refused() {
    let app = TestApp::spawn().await;
    // A tenant's admin: data keys wrapped under the test's master key.
    let _ = app.sign_up_tenant("Keyed").await;
    let other = MasterKey::generate().expect("rng").to_base64();
    let signing = MasterKey::generate().expect("rng").to_base64();
    for name in ["command-api", "projector"] {
        let errors = refused(service(
            &app,
            name,
            &[
                ("EVENTRA_MASTER_KEY", other.as_str()),
                ("JWT_SIGNING_KEY", signing.as_str()),
            ],
        ));
        assert!(
            errors.contains("EVENTRA_MASTER_KEY is not the key this database's personal data"),
            "{name}: {errors}"
        );
    }
    // The right key is taken: the test's own command API, on it, still seals new data.
    let _ = app.sign_up_tenant("Afterwards").await;
}

#[tokio::test]
async fn settings_never_print_a_key_a_secret_or_a_password() {
    let mut app = TestApp::spawn().await;
    app.settings.database_url = "postgres://eventra:pg-hunter2@127.0.0.1:5432/eventra".into();
    app.settings.traffic.redis_url = Some("redis://:redis-hunter2@127.0.0.1:6379".into());
    let printed = format!("{:?}", app.settings);
    let master = app.settings.master_key.as_ref().expect("key").expose();
    let jwt = app.settings.signing_key.as_ref().expect("key").expose();
    for secret in [master.as_str(), jwt.as_str(), "pg-hunter2", "redis-hunter2"] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
    assert!(printed.contains("postgres://eventra:***@127.0.0.1:5432/eventra"));
}
