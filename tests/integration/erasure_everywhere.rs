//! After an erasure, the person's email, name and phone are nowhere: not in the database
//! (dumped as an operator would), not in the data directory (the search index's files
//! included), not in what the processes logged — after every path that handles them ran.

use std::sync::{Arc, Mutex};

use integration_tests::{PASSWORD, Pipeline, wait_until};
use reqwest::StatusCode;
use serde_json::json;

/// Everything the services log, at every level, kept for the test to read.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn install() -> CapturedLogs {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        // Debug everywhere, as an operator chasing a problem would set `RUST_LOG`.
        tracing_subscriber::fmt()
            .with_env_filter(infra::telemetry::filter("debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

/// Every file under `dir`, lowercased, with its path.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, bytes.to_ascii_lowercase()));
            }
        }
    }
    found
}

/// Whether any segment of the live search generation knows `word` in the name or email.
fn index_knows(search_dir: &std::path::Path, word: &str) -> bool {
    let generation = read_models::search::current_generation(search_dir);
    let (index, fields) =
        read_models::search::open(&read_models::search::generation_dir(search_dir, generation))
            .expect("open the index");
    let searcher = index.reader().expect("reader").searcher();
    searcher.segment_readers().iter().any(|segment| {
        [fields.name, fields.email].into_iter().any(|field| {
            segment
                .inverted_index(field)
                .expect("inverted index")
                .terms()
                .get(word.as_bytes())
                .expect("term dictionary")
                .is_some()
        })
    })
}

#[tokio::test]
async fn an_erased_person_is_nowhere_in_the_database_the_files_or_the_logs() {
    let logs = CapturedLogs::install();
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let app = &pipeline.app;
    let running = pipeline.spawn_projector();
    let tenant = app.sign_up_tenant("Everywhere").await;
    let marker = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let email = format!("quinn.vantablack.{marker}@erasure.example");
    let name = "Quinn Vantablack";
    let phone = "+4915123456789";
    // The relay refuses their mail: a rejection that quotes the address.
    smtp.reject_recipients(
        &marker,
        &format!("550 5.1.1 <{email}>: Recipient address rejected: Quinn Vantablack unknown"),
    );
    let signup = app
        .post(
            &format!("/v1/tenants/{}/users", tenant.tenant_id),
            None,
            json!({"email": email, "password": PASSWORD, "display_name": name}),
        )
        .await;
    assert_eq!(signup.status, StatusCode::CREATED, "{:?}", signup.body);
    let user_id = signup.id("user_id");
    let login = app.log_in(tenant.tenant_id, &email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::CREATED);
    let token = login.str("access_token");
    // A change of profile, remembered under an idempotency key.
    let update = app
        .send(
            app.http
                .patch(format!("{}/v1/me", app.address))
                .bearer_auth(&token)
                .header("idempotency-key", format!("profile-{marker}"))
                .json(&json!({"phone": phone, "display_name": format!("{name} Junior")})),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{:?}", update.body);
    // The admin searches by the address and by the name (query strings in request logs).
    let tenant_id = tenant.tenant_id;
    let admin_token = tenant.admin_token.clone();
    let search = |q: &str| {
        let path = format!("/v1/tenants/{tenant_id}/users?q={}", q.replace('@', "%40"));
        let admin_token = admin_token.clone();
        async move { app.query(&path, Some(&admin_token), None).await }
    };
    wait_until("the admin finds them by their address", || async {
        let answer = search(&email).await;
        answer.body["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1)
    })
    .await;
    search("vantablack junior").await;
    pipeline.wait_for_projections().await;
    // The welcome mail was refused (the worker gives up on a 550).
    wait_until("the welcome mail is refused", || async {
        app.db
            .query_opt(
                "SELECT 1 FROM email_jobs WHERE user_id = $1 AND status = 'dead'",
                &[&user_id],
            )
            .await
            .is_ok_and(|row| row.is_some())
    })
    .await;
    let search_dir = app.settings.data_dir.join("search");
    assert!(
        index_knows(&search_dir, "vantablack"),
        "the check below could not fail"
    );

    let erased = app.erase(&tenant, user_id).await;
    assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
    pipeline.wait_for_projections().await;
    // The search index forgets their words, not only their document.
    wait_until("the index forgets their words", || async {
        !index_knows(&search_dir, "vantablack")
    })
    .await;
    assert!(!index_knows(&search_dir, marker.as_str()));
    running.stop().await;

    let needles = [
        "vantablack".to_owned(),
        marker.clone(),
        "quinn".to_owned(),
        "15123456789".to_owned(),
    ];
    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &app.database_url])
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).to_lowercase();
    for needle in &needles {
        assert!(
            !dump.contains(needle.as_str()),
            "the database still holds {needle:?}: {}",
            context(&dump, needle)
        );
    }
    for (path, bytes) in files(&app.settings.data_dir) {
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} still holds {needle:?}",
                path.display()
            );
        }
    }
    let logged = logs.text().to_lowercase();
    assert!(
        logged.contains("request finished"),
        "the logs were captured"
    );
    for needle in &needles {
        assert!(
            !logged.contains(needle.as_str()),
            "the logs hold {needle:?}: {}",
            context(&logged, needle)
        );
    }
    pipeline.finish().await;
}

/// The text around the first `needle` in `text`.
fn context(text: &str, needle: &str) -> String {
    let Some(at) = text.find(needle) else {
        return String::new();
    };
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(200)
        .map_or(0, |(i, _)| i);
    let end = text[at..]
        .char_indices()
        .nth(200)
        .map_or(text.len(), |(i, _)| at + i);
    text[start..end].to_owned()
}
