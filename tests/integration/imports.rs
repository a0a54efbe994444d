//! Bulk imports end to end: CSV and NDJSON with exact counts and row errors, the upload's
//! refusals and limits, a worker killed mid-import resuming without a row twice or lost, two
//! workers at once, and cancellation.

use std::time::Duration;

use integration_tests::{Answer, Pipeline, TenantFixture, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::faults::projector_process;

fn imports_path(tenant: &TenantFixture) -> String {
    format!("/v1/tenants/{}/imports", tenant.tenant_id)
}

async fn upload(
    app: &TestApp,
    tenant: &TenantFixture,
    token: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Answer {
    app.send(
        app.http
            .post(format!("{}{}", app.address, imports_path(tenant)))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body),
    )
    .await
}

/// Polls the import until it is over; answers its last view.
async fn finished(app: &TestApp, tenant: &TenantFixture, import_id: Uuid) -> Value {
    let path = format!("{}/{import_id}", imports_path(tenant));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = app.query(&path, Some(&tenant.admin_token), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let status = answer.str("status");
        if !matches!(status.as_str(), "queued" | "running") {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the import never finished: {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn counts(view: &Value) -> [i64; 5] {
    ["total", "processed", "created", "skipped", "failed"]
        .map(|field| view[field].as_i64().unwrap_or(-1))
}

fn error_rows(view: &Value) -> Vec<i64> {
    view["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["row"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_csv_import_creates_each_valid_row_once_and_reports_the_others_by_row() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Hotel").await;
    let unique = Uuid::new_v4().simple().to_string();
    let ada = format!("ada-{unique}@hotel.example");
    let too_long = "x".repeat(101);
    // A BOM, CRLF, a quoted comma, a quoted newline, a duplicate (in another case), an
    // existing member, an invalid address, a too-long name and a short row.
    let csv = format!(
        "\u{feff}email,display_name,role,locale,phone\r\n\
         {ada},\"Lovelace, Ada\",admin,en-GB,+4915112345678\r\n\
         {upper},Ada Again,,,\r\n\
         {admin},Already Here,,,\r\n\
         not-an-address,Nobody,,,\r\n\
         long-{unique}@hotel.example,{too_long},,,\r\n\
         multi-{unique}@hotel.example,\"Two\nLines\",,,\r\n\
         grace-{unique}@hotel.example,Grace,member,de,\r\n\
         short-{unique}@hotel.example,Short\r\n",
        upper = ada.to_uppercase(),
        admin = tenant.admin_email,
    );
    let started = upload(
        app,
        &tenant,
        &tenant.admin_token,
        "text/csv; charset=utf-8",
        csv,
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    assert_eq!(started.body["total"], 8);
    let import_id = started.id("import_id");
    let view = finished(app, &tenant, import_id).await;
    assert_eq!(view["status"], "completed", "{view:?}");
    assert_eq!(counts(&view), [8, 8, 2, 2, 4], "{view:?}");
    assert_eq!(error_rows(&view), [4, 5, 6, 8], "{view:?}");
    let text = view["errors"].to_string();
    for value in ["not-an-address", too_long.as_str(), "Lines", "short-"] {
        assert!(!text.contains(value), "a reason quotes the row: {text}");
    }
    assert!(
        text.contains("email:") && text.contains("display_name:"),
        "{text}"
    );
    // The users exist once, as the rows say, created by the import without a password.
    let position = app.event_count().await;
    let found = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users?q={}", tenant.tenant_id, "lovelace"),
            &tenant.admin_token,
            position,
        )
        .await;
    let items = found.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{:?}", found.body);
    assert_eq!(items[0]["email"], ada.as_str());
    assert_eq!(items[0]["role"], "admin");
    let user_id: Uuid = serde_json::from_value(items[0]["user_id"].clone()).expect("id");
    let one = app
        .query_caught_up(
            &format!("/v1/tenants/{}/users/{user_id}", tenant.tenant_id),
            &tenant.admin_token,
            position,
        )
        .await;
    assert_eq!(one.body["phone"], "+4915112345678", "{:?}", one.body);
    assert_eq!(one.body["locale"], "en-GB");
    let created = app.decrypted_stream("user", user_id).await;
    assert_eq!(created[0].event_type, "user.created");
    assert_eq!(created[0].data["source"], "import");
    assert_eq!(created[0].metadata.source, "eventra-imports");
    assert_eq!(
        app.log_in(tenant.tenant_id, &ada, "any password at all")
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "no password until one is set"
    );
    let stream = app.stream_types(import_id).await;
    assert_eq!(stream.first().map(String::as_str), Some("import.started"));
    assert_eq!(stream.last().map(String::as_str), Some("import.completed"));
    assert_eq!(
        stream.iter().filter(|t| *t == "import.completed").count(),
        1
    );
    let left: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM import_rows WHERE import_id = $1",
            &[&import_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "the uploaded rows are gone once imported");
    let listed = app
        .query(&imports_path(&tenant), Some(&tenant.admin_token), None)
        .await;
    assert_eq!(listed.body["items"][0]["import_id"], json!(import_id));
    // An admin's own member cannot read or start imports.
    let member = app.sign_up_user(tenant.tenant_id, "Member").await;
    let refused = upload(
        app,
        &tenant,
        &member.token,
        "text/csv",
        "email,display_name\n",
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn an_ndjson_import_reports_unreadable_lines_and_unknown_fields_by_row() {
    let pipeline = Pipeline::start().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Gym").await;
    let unique = Uuid::new_v4().simple().to_string();
    let ndjson = format!(
        "{{\"email\":\"one-{unique}@gym.example\",\"display_name\":\"One\"}}\n\
         \n\
         {{\"email\":\"two-{unique}@gym.example\",\"display_name\":\"Two\",\"role\":\"member\",\"phone\":null}}\r\n\
         not json at all\n\
         {{\"email\":\"three-{unique}@gym.example\",\"display_name\":\"Three\",\"nickname\":\"x\"}}\n\
         {{\"email\":\"four-{unique}@gym.example\",\"display_name\":4}}\n\
         [\"an\",\"array\"]\n\
         {{\"email\":\"ONE-{unique}@gym.example\",\"display_name\":\"One Again\"}}\n"
    );
    let started = upload(
        app,
        &tenant,
        &tenant.admin_token,
        "application/x-ndjson",
        ndjson,
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    let view = finished(app, &tenant, started.id("import_id")).await;
    assert_eq!(counts(&view), [7, 7, 2, 1, 4], "{view:?}");
    assert_eq!(error_rows(&view), [3, 4, 5, 6], "{view:?}");
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn an_upload_with_wrong_columns_too_many_bytes_or_rows_over_the_budget_changes_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.import_max_bytes = 4096;
        s.import_rows_per_hour = 5;
    })
    .await;
    let tenant = app.sign_up_tenant("Cinema").await;
    let token = &tenant.admin_token;
    let before = app.event_count().await;
    let unknown = upload(
        &app,
        &tenant,
        token,
        "text/csv",
        "email,display_name,nickname\na@b.example,A,x\n",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown.str("detail").contains("unknown columns: nickname"),
        "{:?}",
        unknown.body
    );
    let missing = upload(
        &app,
        &tenant,
        token,
        "text/csv",
        "email,role\na@b.example,admin\n",
    )
    .await;
    assert!(
        missing
            .str("detail")
            .contains("missing columns: display_name"),
        "{:?}",
        missing.body
    );
    let empty = upload(&app, &tenant, token, "text/csv", "email,display_name\n").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let json = upload(&app, &tenant, token, "application/json", "{}").await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("email,display_name\n{}", "a@b.example,Name\n".repeat(400));
    let too_big = upload(&app, &tenant, token, "text/csv", big).await;
    assert_eq!(
        too_big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        too_big.body
    );
    assert!(too_big.is_problem());
    let rows = |n: usize| rows_csv(n, &format!("{}.cinema.example", Uuid::new_v4().simple()));
    let first_csv = rows(3);
    let first = app
        .send(
            app.http
                .post(format!("{}{}", app.address, imports_path(&tenant)))
                .bearer_auth(token)
                .header("Content-Type", "text/csv")
                .header("Idempotency-Key", "import-once")
                .body(first_csv.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:?}", first.body);
    let over = upload(&app, &tenant, token, "text/csv", rows(3)).await;
    assert_eq!(
        over.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        over.body
    );
    assert!(over.headers.get("retry-after").is_some());
    let imports: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM imports WHERE tenant_id = $1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(imports, 1, "only the accepted upload is an import");
    assert_eq!(app.event_count().await, before + 1, "one import.started");
}

fn rows_csv(n: usize, domain: &str) -> String {
    let mut csv = String::from("email,display_name\n");
    for i in 0..n {
        csv.push_str(&format!("person{i}@{domain},Person {i}\n"));
    }
    csv
}

async fn imported_accounts(app: &TestApp, tenant: &TenantFixture) -> (i64, i64) {
    let row = app
        .db
        .query_one(
            "SELECT count(*), count(DISTINCT aggregate_id) FROM events
              WHERE tenant_id = $1 AND type = 'user.created' AND data->>'source' = 'import'",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_worker_killed_mid_import_and_two_workers_at_once_create_every_row_exactly_once() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Retail").await;
    let domain = format!("{}.retail.example", Uuid::new_v4().simple());
    let started = upload(
        app,
        &tenant,
        &tenant.admin_token,
        "text/csv",
        rows_csv(400, &domain),
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    let import_id = started.id("import_id");
    let first = projector_process(&pipeline);
    let path = format!("{}/{import_id}", imports_path(&tenant));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = app.query(&path, Some(&tenant.admin_token), None).await;
        if view.body["processed"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the import never got under way: {:?}",
            view.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first); // SIGKILL mid-import
    let view = app.query(&path, Some(&tenant.admin_token), None).await;
    assert!(
        view.body["processed"].as_i64().unwrap_or(0) < 400,
        "killed before the end: {:?}",
        view.body
    );
    let _second = projector_process(&pipeline);
    let _third = projector_process(&pipeline);
    let view = finished(app, &tenant, import_id).await;
    assert_eq!(view["status"], "completed", "{view:?}");
    assert_eq!(counts(&view), [400, 400, 400, 0, 0], "{view:?}");
    assert_eq!(imported_accounts(app, &tenant).await, (400, 400));
    let reserved: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM unique_reservations WHERE tenant_id = $1 AND kind = 'email'",
            &[&tenant.tenant_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(reserved, 401, "the admin and each imported address once");
    pipeline.finish().await;
}

#[tokio::test]
async fn a_cancelled_import_stops_and_a_second_waits_for_the_first() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Services").await;
    let domain = format!("{}.services.example", Uuid::new_v4().simple());
    let first = upload(
        app,
        &tenant,
        &tenant.admin_token,
        "text/csv",
        rows_csv(300, &domain),
    )
    .await;
    let second = upload(
        app,
        &tenant,
        &tenant.admin_token,
        "text/csv",
        rows_csv(20, &format!("second.{domain}")),
    )
    .await;
    let (first_id, second_id) = (first.id("import_id"), second.id("import_id"));
    // No worker runs yet: both wait, and the second stays queued behind the first.
    let cancelled = app
        .delete(
            &format!("{}/{first_id}", imports_path(&tenant)),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = app
        .delete(
            &format!("{}/{first_id}", imports_path(&tenant)),
            Some(&tenant.admin_token),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let other = app.sign_up_tenant("Elsewhere").await;
    let foreign = app
        .delete(
            &format!("{}/{second_id}", imports_path(&tenant)),
            Some(&other.admin_token),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let projector = pipeline.spawn_projector();
    let view = finished(app, &tenant, second_id).await;
    assert_eq!(view["status"], "completed");
    let view = finished(app, &tenant, first_id).await;
    assert_eq!(view["status"], "cancelled");
    assert_eq!(view["created"], 0, "cancelled before a worker took it");
    assert_eq!(imported_accounts(app, &tenant).await, (20, 20));
    let stream = app.stream_types(first_id).await;
    assert_eq!(stream, ["import.started", "import.cancelled"]);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn each_imported_user_gets_one_link_and_sets_a_first_password_with_it() {
    let (pipeline, smtp) = Pipeline::start_with_mail().await;
    let projector = pipeline.spawn_projector();
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Linked").await;
    let unique = Uuid::new_v4().simple().to_string();
    let (first, second) = (
        format!("first-{unique}@linked.example"),
        format!("second-{unique}@linked.example"),
    );
    let csv = format!("email,display_name,locale\n{first},First,de\n{second},Second,\n");
    let started = upload(app, &tenant, &tenant.admin_token, "text/csv", csv).await;
    let view = finished(app, &tenant, started.id("import_id")).await;
    assert_eq!(counts(&view), [2, 2, 2, 0, 0], "{view:?}");
    let mails = smtp.wait_for(&first, 1, Duration::from_secs(20)).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(
        mail.subject().contains("Passwort"),
        "German for locale de: {}",
        mail.subject()
    );
    let token = mail.link_token().expect("a link");
    assert!(
        mail.text().contains(&format!(
            "https://people.example/invitations/accept?token={token}"
        )),
        "{}",
        mail.text()
    );
    assert_eq!(
        smtp.wait_for(&second, 1, Duration::from_secs(20))
            .await
            .len(),
        1
    );
    // The link sets the first password (the name stays as imported); it works once.
    let accepted = app
        .post(
            "/v1/invitations/accept",
            None,
            json!({"token": token, "password": "my very own passphrase"}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{:?}", accepted.body);
    let login = app
        .log_in(tenant.tenant_id, &first, "my very own passphrase")
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.body);
    let again = app
        .post(
            "/v1/invitations/accept",
            None,
            json!({"token": token, "password": "another passphrase here"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    // The admin gets no notice per imported row, and nobody gets a second email.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received_by(&first).len(), 1);
    let to_admin: Vec<String> = smtp
        .received_by(&tenant.admin_email)
        .iter()
        .map(|m| m.subject())
        .collect();
    assert!(
        to_admin.iter().all(|s| !s.contains("accepted")),
        "{to_admin:?}"
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn an_operator_lists_imports_and_cancels_one_from_the_command_line() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Operated").await;
    let domain = format!("{}.operated.example", Uuid::new_v4().simple());
    let started = upload(
        app,
        &tenant,
        &tenant.admin_token,
        "text/csv",
        rows_csv(5, &domain),
    )
    .await;
    let import_id = started.id("import_id");
    let (ok, out, err) = crate::cli::run(
        &pipeline,
        "projector",
        &["imports", "list", "--tenant", &tenant.tenant_id.to_string()],
    );
    assert!(ok, "{err}");
    let listed: Value =
        serde_json::from_str(out.lines().next().unwrap_or("")).expect("a JSON line");
    assert_eq!(listed["import_id"], json!(import_id));
    assert_eq!(listed["status"], "queued");
    let (ok, out, err) = crate::cli::run(
        &pipeline,
        "projector",
        &["imports", "cancel", &import_id.to_string()],
    );
    assert!(ok, "{out} {err}");
    let (ok, _, err) = crate::cli::run(
        &pipeline,
        "projector",
        &["imports", "cancel", &import_id.to_string()],
    );
    assert!(!ok && err.contains("cancelled already"), "{err}");
    let events = app.decrypted_stream("import", import_id).await;
    let last = events.last().expect("events");
    assert_eq!(last.event_type, "import.cancelled");
    assert!(last.data["cancelled_by"].is_null());
    assert!(last.metadata.actor_id.is_none());
    pipeline.finish().await;
}

#[tokio::test]
async fn a_batch_that_keeps_failing_fails_the_import_instead_of_being_tried_forever() {
    let pipeline = Pipeline::start().await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Poisoned").await;
    let domain = format!("{}.poisoned.example", Uuid::new_v4().simple());
    let started = upload(
        app,
        &tenant,
        &tenant.admin_token,
        "text/csv",
        rows_csv(10, &domain),
    )
    .await;
    let import_id = started.id("import_id");
    // Every batch now fails at its last statement (the queue row's update).
    app.db
        .execute(
            "ALTER TABLE imports ADD CONSTRAINT poison CHECK (next_row < 2)",
            &[],
        )
        .await
        .expect("poison");
    let projector = pipeline.spawn_projector();
    let view = finished(app, &tenant, import_id).await;
    assert_eq!(view["status"], "failed", "{view:?}");
    assert_eq!(
        view["created"], 0,
        "no failed batch left anything: {view:?}"
    );
    assert_eq!(imported_accounts(app, &tenant).await, (0, 0));
    let stream = app.stream_types(import_id).await;
    assert_eq!(stream, ["import.started", "import.failed"]);
    let left: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM import_rows WHERE import_id = $1",
            &[&import_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "a failed import's rows are gone");
    projector.stop().await;
    pipeline.finish().await;
}
