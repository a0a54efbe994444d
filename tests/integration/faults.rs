//! Fault injection: the API process killed under load, database connections cut mid-command.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::{PASSWORD, TestApp, connect, fresh_database};
use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;

/// The `command-api` binary next to this test binary (`scripts/test` builds it first).
fn command_api_binary() -> PathBuf {
    if let Ok(path) = std::env::var("EVENTRA_COMMAND_API_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir");
    let binary = profile_dir.join("command-api");
    assert!(
        binary.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; scripts/test does)",
        binary.display()
    );
    binary
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Process {
    child: Child,
    address: String,
}

async fn start_process(
    database_url: &str,
    master_key: &str,
    signing_key: &str,
    data_dir: &std::path::Path,
) -> Process {
    let port = free_port();
    let mut child = Command::new(command_api_binary())
        .env("DATABASE_URL", database_url)
        .env("COMMAND_API_ADDR", format!("127.0.0.1:{port}"))
        .env("EVENTRA_MASTER_KEY", master_key)
        .env("JWT_SIGNING_KEY", signing_key)
        .env("EVENTRA_DATA_DIR", data_dir)
        .env("RATE_LIMIT_ANONYMOUS_PER_HOUR", "1000000")
        .env("RATE_LIMIT_STANDARD_PER_HOUR", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start command-api");
    let address = format!("http://127.0.0.1:{port}");
    let http = integration_tests::http_client();
    for _ in 0..200 {
        if http.get(format!("{address}/health")).send().await.is_ok() {
            return Process { child, address };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("command-api did not come up on {address}");
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn killing_the_api_under_load_loses_no_acknowledged_command_and_leaves_no_half_command() {
    let database_url = fresh_database().await;
    let master_key = infra::crypto::MasterKey::generate()
        .expect("rng")
        .to_base64();
    let signing_key = infra::crypto::MasterKey::generate()
        .expect("rng")
        .to_base64();
    let data_dir = integration_tests::TempDir::new("eventra-kill");
    let mut process = start_process(&database_url, &master_key, &signing_key, &data_dir).await;
    let http = integration_tests::http_client();
    let tenant = http
        .post(format!("{}/v1/tenants", process.address))
        .json(&json!({"name": "Crash", "admin": {"email": "admin@crash.example", "password": PASSWORD, "display_name": "Admin"}}))
        .send()
        .await
        .expect("signup")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let tenant_id = tenant["tenant_id"].as_str().expect("tenant id").to_owned();

    // Signups stream in from 16 clients until the process dies.
    let address = Arc::new(process.address.clone());
    let mut clients = JoinSet::new();
    for client in 0..16 {
        let address = Arc::clone(&address);
        let tenant_id = tenant_id.clone();
        let http = http.clone();
        clients.spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0.. {
                let answer = http
                    .post(format!("{address}/v1/tenants/{tenant_id}/users"))
                    .json(&json!({"email": format!("c{client}-{n}@crash.example"), "password": PASSWORD, "display_name": "Load"}))
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status() == StatusCode::CREATED => {
                        if let Ok(body) = response.json::<serde_json::Value>().await {
                            acknowledged.push(body["user_id"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                    Ok(response) => assert!(
                        !response.status().is_server_error() || response.status() == StatusCode::SERVICE_UNAVAILABLE,
                        "unexpected {}",
                        response.status()
                    ),
                    Err(_) => break, // the process is gone
                }
            }
            acknowledged
        });
    }
    // Killed once the load is well under way (some signups committed).
    let db = connect(&database_url).await;
    integration_tests::wait_until("signups to commit before the kill", || async {
        db.query_one(
            "SELECT count(*) FROM events WHERE type = 'user.created'",
            &[],
        )
        .await
        .is_ok_and(|row| row.get::<_, i64>(0) > 40)
    })
    .await;
    process.child.kill().expect("SIGKILL");
    let _ = process.child.wait();
    let mut acknowledged = HashSet::new();
    while let Some(result) = clients.join_next().await {
        acknowledged.extend(result.expect("client"));
    }
    assert!(!acknowledged.is_empty(), "the load ran before the kill");

    let db = connect(&database_url).await;
    let created: HashSet<String> = db
        .query(
            "SELECT aggregate_id::text FROM events WHERE type = 'user.created'",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for user_id in &acknowledged {
        assert!(
            created.contains(user_id),
            "acknowledged signup {user_id} was lost"
        );
    }
    let half_done: i64 = db
        .query_one(
            "SELECT count(*) FROM events c WHERE c.type = 'user.created' AND NOT EXISTS
               (SELECT 1 FROM events j WHERE j.aggregate_id = c.aggregate_id AND j.type = 'tenant.member_joined')",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(half_done, 0, "a command was partly applied");
    let orphan_reservations: i64 = db
        .query_one(
            "SELECT count(*) FROM unique_reservations r WHERE NOT EXISTS
               (SELECT 1 FROM events e WHERE e.aggregate_id = r.owner_id)",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(orphan_reservations, 0);

    // After a restart everything works, and an acknowledged user can log in.
    let restarted = start_process(&database_url, &master_key, &signing_key, &data_dir).await;
    let login = http
        .post(format!(
            "{}/v1/tenants/{tenant_id}/sessions",
            restarted.address
        ))
        .json(&json!({"email": "c0-0@crash.example", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::CREATED);
    drop(restarted);
}

#[tokio::test]
async fn cutting_database_connections_mid_load_never_answers_500_and_loses_no_acknowledged_update()
{
    let app = Arc::new(TestApp::spawn().await);
    let tenant = app.sign_up_tenant("Cut").await;
    let user = app.sign_up_user(tenant.tenant_id, "Cut User").await;
    let load_running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut clients = JoinSet::new();
    for client in 0..8 {
        let app = Arc::clone(&app);
        let token = user.token.clone();
        clients.spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..25 {
                let name = format!("Client {client} update {n}");
                let answer = app.update_me(&token, json!({"display_name": name})).await;
                assert!(
                    [
                        StatusCode::OK,
                        StatusCode::CONFLICT,
                        StatusCode::SERVICE_UNAVAILABLE
                    ]
                    .contains(&answer.status),
                    "unexpected {} {:?}",
                    answer.status,
                    answer.body
                );
                if answer.status == StatusCode::OK {
                    acknowledged.push((answer.body["version"].as_i64().expect("version"), name));
                }
            }
            acknowledged
        });
    }
    // Connections are cut while the load runs; a cut counts as mid-command when the backend
    // it ended was running a statement or inside a transaction.
    let killer = {
        let database_url = app.database_url.clone();
        let load_running = Arc::clone(&load_running);
        tokio::spawn(async move {
            let db = connect(&database_url).await;
            let mut cuts = 0;
            let mut mid_command = 0;
            while load_running.load(std::sync::atomic::Ordering::SeqCst)
                && (cuts < 10 || mid_command == 0)
            {
                tokio::time::sleep(Duration::from_millis(40)).await;
                if let Ok(rows) = db
                    .query(
                        "SELECT state, pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = current_database() AND pid <> pg_backend_pid()
                            AND backend_type = 'client backend'",
                        &[],
                    )
                    .await
                {
                    cuts += 1;
                    mid_command += rows
                        .iter()
                        .filter(|row| {
                            row.get::<_, bool>(1)
                                && matches!(
                                    row.get::<_, Option<String>>(0).as_deref(),
                                    Some("active" | "idle in transaction")
                                )
                        })
                        .count();
                }
            }
            mid_command
        })
    };
    let mut acknowledged = Vec::new();
    while let Some(result) = clients.join_next().await {
        acknowledged.extend(result.expect("client"));
    }
    load_running.store(false, std::sync::atomic::Ordering::SeqCst);
    let mid_command = killer.await.expect("killer");
    assert!(mid_command > 0, "no cut landed while a command was running");
    assert!(!acknowledged.is_empty(), "some updates were acknowledged");

    // Each acknowledged update is the stored event at its version, with what it wrote: a
    // lost update whose sequence was reused by a later one would show another name there.
    let stored: std::collections::HashMap<i64, String> = app
        .decrypted_stream("user", user.user_id)
        .await
        .into_iter()
        .filter(|e| e.event_type == "user.profile_updated")
        .map(|e| {
            (
                e.sequence,
                e.data["display_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    for (version, name) in &acknowledged {
        assert_eq!(
            stored.get(version),
            Some(name),
            "acknowledged update {version} ({name}) is not what is stored"
        );
    }
    let after = app.update_me(&user.token, json!({"locale": "en"})).await;
    assert_eq!(
        after.status,
        StatusCode::OK,
        "the API recovers by itself: {:?}",
        after.body
    );
}

/// A NATS server of the test's own, on a free port, with its store in `dir`.
fn start_nats(port: u16, dir: &std::path::Path) -> Child {
    Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server")
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

#[tokio::test]
async fn a_nats_server_killed_and_restarted_under_load_loses_nothing_and_applies_nothing_twice() {
    let port = free_port();
    let dir = integration_tests::TempDir::new("eventra-nats");
    let mut nats = start_nats(port, &dir);
    wait_for_port(port).await;
    let pipeline =
        integration_tests::Pipeline::start_with_nats(Some(format!("nats://127.0.0.1:{port}")))
            .await;
    let running = pipeline.spawn_projector();
    let tenant = pipeline.app.sign_up_tenant("Weather").await;
    pipeline.wait_for_projections().await;
    let ready = format!("{}/ready", running.address);
    assert_eq!(ready_status(&ready).await.0, 200);

    // Writes keep coming while NATS dies and comes back on the same store.
    let writer = {
        let app_address = pipeline.app.address.clone();
        let tenant_id = tenant.tenant_id;
        tokio::spawn(async move {
            let http = integration_tests::http_client();
            let mut created = 0;
            for n in 0..30 {
                let answer = http
                    .post(format!("{app_address}/v1/tenants/{tenant_id}/users"))
                    .json(&json!({"email": format!("storm-{n}@example.com"), "password": PASSWORD, "display_name": "Storm"}))
                    .send()
                    .await
                    .expect("the command API does not depend on NATS");
                assert_eq!(answer.status(), StatusCode::CREATED);
                created += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            created
        })
    };
    // NATS dies while the writes are under way.
    integration_tests::wait_until("the writes to begin", || async {
        pipeline
            .app
            .db
            .query_one(
                "SELECT count(*) FROM events WHERE type = 'user.created'",
                &[],
            )
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) > 3)
    })
    .await;
    nats.kill().expect("SIGKILL nats-server");
    let _ = nats.wait();
    // The projector says it is not ready while NATS is gone, and names the culprit.
    let (status, body) = wait_for_ready_status(&ready, 503).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["nats"]["status"], "down", "{body}");
    assert_eq!(body["checks"]["postgres"]["status"], "up", "{body}");
    // The same problem every service answers when not ready, naming what is down.
    assert_eq!(body["status"], 503, "{body}");
    assert_eq!(body["detail"], "not ready: nats down", "{body}");
    let mut nats = start_nats(port, &dir);
    wait_for_port(port).await;
    let (status, body) = wait_for_ready_status(&ready, 200).await;
    assert_eq!(status, 200, "ready again once NATS is back: {body}");
    assert_eq!(writer.await.expect("writer"), 30);

    pipeline.wait_for_projections().await;
    let events = pipeline.app.event_count().await;
    for (projection, applied) in pipeline.applied().await {
        assert_eq!(
            applied, events,
            "{projection} applied every event exactly once"
        );
    }
    let users: i64 = pipeline
        .app
        .db
        .query_one(
            "SELECT count(*) FROM rm_users WHERE tenant_id = $1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(users, 31);
    running.stop().await;
    let _ = nats.kill();
    let _ = nats.wait();
    drop(dir);
}

#[tokio::test]
async fn json_logs_carry_the_ids_and_never_a_password_a_token_or_personal_data() {
    let database_url = fresh_database().await;
    let master_key = infra::crypto::MasterKey::generate()
        .expect("rng")
        .to_base64();
    let signing_key = infra::crypto::MasterKey::generate()
        .expect("rng")
        .to_base64();
    let data_dir = integration_tests::TempDir::new("eventra-logs");
    let log_path = data_dir.join("command-api.log");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = free_port();
    let mut child = Command::new(command_api_binary())
        .env("DATABASE_URL", &database_url)
        .env("COMMAND_API_ADDR", format!("127.0.0.1:{port}"))
        .env("EVENTRA_MASTER_KEY", &master_key)
        .env("JWT_SIGNING_KEY", &signing_key)
        .env("EVENTRA_DATA_DIR", &data_dir)
        .env("RATE_LIMIT_ANONYMOUS_PER_HOUR", "1000000")
        .env("RATE_LIMIT_STANDARD_PER_HOUR", "1000000")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log))
        .stderr(Stdio::null())
        .spawn()
        .expect("start command-api");
    let address = format!("http://127.0.0.1:{port}");
    let http = integration_tests::http_client();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{address}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let email = "Secret.Person@Private.example";
    let password = "my very private passphrase";
    let tenant: serde_json::Value = http
        .post(format!("{address}/v1/tenants"))
        .header("X-Correlation-Id", "trace-4711")
        .json(&json!({"name": "Logged", "admin": {"email": email, "password": password, "display_name": "Secret Person"}}))
        .send()
        .await
        .expect("signup")
        .json()
        .await
        .expect("json");
    let tenant_id = tenant["tenant_id"].as_str().unwrap_or_default().to_owned();
    let login: serde_json::Value = http
        .post(format!("{address}/v1/tenants/{tenant_id}/sessions"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = login["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let _ = http
        .patch(format!("{address}/v1/me"))
        .bearer_auth(&token)
        .json(&json!({"phone": "+4915199911122"}))
        .send()
        .await;
    let _ = http
        .post(format!("{address}/v1/tenants/{tenant_id}/sessions"))
        .json(&json!({"email": email, "password": "a wrong passphrase"}))
        .send()
        .await;
    // Personal data in a query string stays out of the request log.
    let _ = http
        .delete(format!(
            "{address}/v1/me/sessions?scope=others&note={}",
            email.replace('@', "%40")
        ))
        .bearer_auth(&token)
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "command-api did not start");
    assert!(!token.is_empty() && !refresh.is_empty());

    let logs = std::fs::read_to_string(&log_path).expect("logs");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() > 5, "JSON lines expected:\n{logs}");
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["correlation_id"] == "trace-4711"
                && l["span"]["tenant_id"] == tenant_id.as_str()),
        "a log line carries the correlation and tenant ids"
    );
    assert!(lines.iter().any(|l| l["span"]["request_id"].is_string()));
    assert!(
        lines.iter().any(|l| l["message"] == "request finished"
            && l["status"].is_u64()
            && l["latency_ms"].is_f64()
            && l["route"].is_string()
            && l["span"]["request_id"].is_string()),
        "request lines carry status, latency, route and the request id"
    );
    for secret in [
        password,
        "a wrong passphrase",
        email,
        "secret.person",
        "Private.example",
        "Secret Person",
        "4915199911122",
        token.as_str(),
        refresh.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret:?} appears in the logs");
    }
    drop(data_dir);
}

async fn ready_status(url: &str) -> (u16, serde_json::Value) {
    match reqwest::get(url).await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or_default())
        }
        Err(error) => (0, json!({"error": error.to_string()})),
    }
}

/// Polls `/ready` until it answers `wanted` (up to the wait limit); returns the last answer.
async fn wait_for_ready_status(url: &str, wanted: u16) -> (u16, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + integration_tests::WAIT_LIMIT;
    loop {
        let answer = ready_status(url).await;
        if answer.0 == wanted || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_command_api_is_not_ready_while_postgres_is_unreachable_and_recovers_by_itself() {
    let server = format!("127.0.0.1:{}", integration_tests::server_port());
    let proxy = integration_tests::proxy::Proxy::start(server.clone()).await;
    let port = proxy.port;
    let app = TestApp::spawn_with(|settings| {
        settings.database_url = settings
            .database_url
            .replace(&server, &format!("127.0.0.1:{port}"))
            .into();
    })
    .await;
    assert!(app.settings.database_url.contains(&port.to_string()));
    let tenant = app.sign_up_tenant("Outage").await;
    let ready = format!("{}/ready", app.address);
    let (status, body) = ready_status(&ready).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["postgres"]["status"], "up", "{body}");

    proxy.cut().await;
    let (status, body) = wait_for_ready_status(&ready, 503).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["postgres"]["status"], "down", "{body}");
    assert_eq!(body["status"], 503, "a problem document: {body}");
    // A command during the outage is a clean 503 problem, never a 500.
    let refused = app
        .update_me(&tenant.admin_token, json!({"locale": "de"}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.body
    );
    assert!(refused.is_problem());
    let answer = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": "outage@example.com", "password": PASSWORD, "display_name": "Outage"}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        answer.body
    );

    proxy.restore();
    let (status, body) = wait_for_ready_status(&ready, 200).await;
    assert_eq!(
        status, 200,
        "ready again once Postgres is reachable: {body}"
    );
    let answer = app
        .update_me(&tenant.admin_token, json!({"locale": "de"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
}

/// A child process killed (and reaped) when dropped, so that a failing test leaves none
/// running against its database.
pub(crate) struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// [`start_projector_process`], killed when dropped.
pub(crate) fn projector_process(pipeline: &integration_tests::Pipeline) -> Running {
    Running(start_projector_process(pipeline, free_port()))
}

/// The projector binary, run as an operator runs it, over the pipeline's database, stream
/// and search directory.
pub(crate) fn start_projector_process(pipeline: &integration_tests::Pipeline, port: u16) -> Child {
    let settings = &pipeline.settings;
    Command::new(crate::cli::binary("projector"))
        .arg("run")
        .env("DATABASE_URL", &settings.database_url)
        .env("DATABASE_POOL_SIZE", "4")
        .env("NATS_URL", &settings.nats_url)
        .env("NATS_STREAM", &settings.stream.name)
        .env("NATS_SUBJECT_PREFIX", &settings.stream.subject_prefix)
        .env(
            "EVENTRA_MASTER_KEY",
            settings
                .master_key
                .as_ref()
                .map_or("", |key| key.expose().as_str()),
        )
        .env("EVENTRA_DATA_DIR", &settings.data_dir)
        .env("SEARCH_INDEX_DIR", &settings.search_dir)
        .env("PROJECTOR_ADDR", format!("127.0.0.1:{port}"))
        .env("PROJECTOR_BATCH_SIZE", "8")
        .env("RELAY_POLL_INTERVAL_MS", "100")
        .env("TIMER_POLL_INTERVAL_MS", "200")
        .env("TIMER_LEASE_SECS", "2")
        .env("IMPORT_BATCH_ROWS", "20")
        .env("IMPORT_LEASE_SECS", "2")
        .env("IMPORT_POLL_INTERVAL_MS", "100")
        .env("WEBHOOK_ALLOWED_HOSTS", "127.0.0.0/8")
        .env("WEBHOOK_POLL_INTERVAL_MS", "50")
        .env("WEBHOOK_LEASE_SECS", "2")
        .env("WEBHOOK_RETRY_BASE_MS", "100")
        .env("WEBHOOK_RETRY_MAX_MS", "1000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the projector")
}

/// The search index's own checkpoint (its last commit's payload), by position.
fn search_index_position(search_dir: &std::path::Path) -> i64 {
    let generation = read_models::search::current_generation(search_dir);
    read_models::search::open(&read_models::search::generation_dir(search_dir, generation))
        .and_then(|(index, _)| read_models::search::checkpoint(&index))
        .map_or(0, |order| order.position)
}

#[tokio::test]
async fn a_projector_process_killed_mid_batch_leaves_a_search_index_equal_to_the_store() {
    let pipeline = Arc::new(integration_tests::Pipeline::start().await);
    let tenant = pipeline.app.sign_up_tenant("Indexed").await;
    // Writes stream in the whole time: signups and renames.
    let (stop_writing, writing) = tokio::sync::watch::channel(false);
    let writer = {
        let pipeline = Arc::clone(&pipeline);
        let tenant_id = tenant.tenant_id;
        tokio::spawn(async move {
            let mut n = 0;
            while !*writing.borrow() {
                let user = pipeline
                    .app
                    .sign_up_user(tenant_id, &format!("Indexed {n}"))
                    .await;
                let answer = pipeline
                    .app
                    .update_me(&user.token, json!({"display_name": format!("Renamed {n}")}))
                    .await;
                assert_eq!(answer.status, StatusCode::OK);
                n += 1;
            }
            n
        })
    };
    let search_dir = pipeline.settings.search_dir.clone();
    let mut kills_behind = 0;
    for _ in 0..3 {
        let port = free_port();
        let mut projector = start_projector_process(&pipeline, port);
        // Killed once the index has moved on since the last kill and while it is behind the
        // store: events read and not yet committed to the index, or about to be.
        let start = search_index_position(&search_dir);
        integration_tests::wait_until("the index to take new events", || async {
            search_index_position(&search_dir) > start
        })
        .await;
        projector.kill().expect("SIGKILL the projector");
        let _ = projector.wait();
        let head: i64 = pipeline
            .app
            .db
            .query_one("SELECT coalesce(max(position), 0) FROM events", &[])
            .await
            .expect("head")
            .get(0);
        if search_index_position(&search_dir) < head {
            kills_behind += 1;
        }
    }
    assert!(
        kills_behind > 0,
        "no kill landed while the index was behind the store"
    );
    let _ = stop_writing.send(true);
    let written = writer.await.expect("the writer");
    assert!(written > 0);
    // Restarted, it catches up, and the index is exactly the store.
    let mut projector = start_projector_process(&pipeline, free_port());
    pipeline.wait_for_projections().await;
    projector.kill().expect("stop");
    let _ = projector.wait();
    pipeline
        .assert_search_index_equals_the_store(&search_dir, tenant.tenant_id)
        .await;
    if let Ok(pipeline) = Arc::try_unwrap(pipeline) {
        pipeline.finish().await;
    }
}
