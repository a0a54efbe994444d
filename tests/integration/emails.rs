//! Email jobs end to end: events → jobs → a real SMTP server on loopback (or files).

use std::sync::Arc;
use std::time::Duration;

use integration_tests::smtp::SmtpServer;
use integration_tests::{PASSWORD, Pipeline, TestApp};
use projector::email::transport::Mailer;
use projector::email::worker::{EmailWorker, WorkerSettings};
use projector::projections::Projection;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

const WAIT: Duration = integration_tests::WAIT_LIMIT;

async fn mail_pipeline(
    customise: impl FnOnce(&mut projector::settings::Settings),
) -> (Pipeline, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let mut pipeline = Pipeline::start().await;
    pipeline.settings.smtp_url = Some(smtp.url().into());
    customise(&mut pipeline.settings);
    (pipeline, smtp)
}

#[derive(Debug, Clone)]
struct Job {
    job_id: Uuid,
    template: String,
    status: String,
    attempts: i32,
    coalesced_events: i32,
    note: Option<String>,
    last_error: Option<String>,
    message_id: String,
    recipient: Option<String>,
}

async fn jobs_of(app: &TestApp, user_id: Uuid) -> Vec<Job> {
    app.db
        .query(
            "SELECT job_id, template, status, attempts, coalesced_events, note, last_error, message_id, recipient
               FROM email_jobs WHERE user_id = $1 ORDER BY created_at, job_id",
            &[&user_id],
        )
        .await
        .expect("jobs")
        .iter()
        .map(|row| Job {
            job_id: row.get(0),
            template: row.get(1),
            status: row.get(2),
            attempts: row.get(3),
            coalesced_events: row.get(4),
            note: row.get(5),
            last_error: row.get(6),
            message_id: row.get(7),
            recipient: row.get(8),
        })
        .collect()
}

/// Waits until the user's job with `template` satisfies `done`.
async fn wait_for_job(
    app: &TestApp,
    user_id: Uuid,
    template: &str,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let jobs = jobs_of(app, user_id).await;
        if let Some(job) = jobs.iter().find(|j| j.template == template && done(j)) {
            return job.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {template} job reached the expected state: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets the system run a while longer, to see that nothing more arrives.
async fn settle(pipeline: &Pipeline) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let client = pipeline.pool.get().await.expect("connection");
        let status = read_models::projections::status(&client)
            .await
            .expect("status");
        let caught_up = status
            .projections
            .iter()
            .any(|p| p.name == "email-jobs" && p.lag_events == 0 && p.position > 0);
        if caught_up {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "email-jobs did not catch up: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing is being sent and nothing is due: the worker has nothing left to do now.
    integration_tests::wait_until("the email worker to have nothing due", || async {
        pipeline
            .app
            .db
            .query_one(
                "SELECT count(*) FROM email_jobs
                  WHERE status = 'sending' OR (status = 'pending' AND due_at <= now())",
                &[],
            )
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) == 0)
    })
    .await;
}

fn the_projector_without_search() -> Vec<Projection> {
    let mut projections = Projection::ALL.to_vec();
    projections.push(Projection::EmailJobs);
    projections
}

#[tokio::test]
async fn signing_up_delivers_exactly_one_welcome_email_even_across_restarts() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    let projector = pipeline.spawn_projector();
    let tenant = pipeline.app.sign_up_tenant("Acme").await;

    let mails = smtp.wait_for(&tenant.admin_email, 1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.subject(), "Welcome to “Acme”");
    assert!(mail.data.contains("Hello Acme Admin,"));
    assert!(mail.data.contains("multipart/alternative"));
    assert!(mail.data.contains("text/html"));
    let job = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "sent"
    })
    .await;
    assert_eq!(job.attempts, 1);
    assert_eq!(
        mail.message_id(),
        job.message_id,
        "a stable Message-ID per job"
    );

    // The projector restarts: the queue and its checkpoint are durable; nothing is re-sent.
    projector.stop().await;
    let projector = pipeline.spawn_projector();
    pipeline.app.sign_up_user(tenant.tenant_id, "Second").await;
    settle(&pipeline).await;
    assert_eq!(smtp.received_by(&tenant.admin_email).len(), 1);
    // Joining in the signup itself mails nothing beyond the welcome.
    assert_eq!(jobs_of(&pipeline.app, tenant.admin_id).await.len(), 1);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_burst_of_profile_updates_coalesces_into_one_notice() {
    let (pipeline, smtp) = mail_pipeline(|settings| {
        settings.email_policy.coalesce_window = Duration::from_millis(1500);
    })
    .await;
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let tenant = pipeline.app.sign_up_tenant("Burst").await;
    let user = pipeline.app.sign_up_user(tenant.tenant_id, "Ada").await;
    for (i, body) in [
        json!({"display_name": "Ada L"}),
        json!({"phone": "+442079460000"}),
        json!({"display_name": "Ada Lovelace"}),
        json!({"locale": "en-GB"}),
        json!({"display_name": "Ada King"}),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = pipeline.app.patch("/v1/me", Some(&user.token), body).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "update {i}: {:?}",
            answer.body
        );
    }

    let job = wait_for_job(&pipeline.app, user.user_id, "profile_updated", |j| {
        j.status == "sent"
    })
    .await;
    assert_eq!(job.coalesced_events, 5, "five updates, one notice");
    settle(&pipeline).await;
    let mails = smtp.received_by(&user.email);
    let notices: Vec<_> = mails
        .iter()
        .filter(|m| m.subject() == "Your profile was updated")
        .collect();
    assert_eq!(notices.len(), 1, "{mails:#?}");
    let text = &notices[0].data;
    assert!(
        text.contains("Hello Ada King,"),
        "greets the newest name: {text}"
    );
    for field in ["display name", "phone number", "language"] {
        assert!(text.contains(field), "{field} listed: {text}");
    }
    assert_eq!(
        jobs_of(&pipeline.app, user.user_id)
            .await
            .iter()
            .filter(|j| j.template == "profile_updated")
            .count(),
        1
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_421_answer_is_retried_with_backoff_and_delivered() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    smtp.answer_next(2, "421 4.3.2 service busy, try again later");
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let tenant = pipeline.app.sign_up_tenant("Busy").await;

    let job = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "sent"
    })
    .await;
    assert_eq!(job.attempts, 3);
    assert_eq!(smtp.received_by(&tenant.admin_email).len(), 1);
    let outcomes: Vec<(String, Option<String>)> = pipeline
        .app
        .db
        .query(
            "SELECT outcome, error FROM email_job_attempts WHERE job_id = $1 ORDER BY attempt",
            &[&job.job_id],
        )
        .await
        .expect("attempts")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(outcomes[0].0, "retry");
    assert!(
        outcomes[0].1.as_deref().unwrap_or_default().contains("421"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].0, "retry");
    assert_eq!(outcomes[2], ("sent".to_owned(), None));
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_550_answer_is_dead_at_once_visible_to_admins_and_retryable_from_the_cli() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    smtp.reject_recipients("bounce", "550 5.1.1 no such mailbox");
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Bouncy").await;
    let user = app.sign_up_user(tenant.tenant_id, "Bounce").await;

    let job = wait_for_job(app, user.user_id, "welcome", |j| j.status == "dead").await;
    assert_eq!(job.attempts, 1, "a permanent failure is not retried");
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("550"),
        "{job:?}"
    );

    // The tenant's admin sees it through the query API; nobody else does.
    let path = format!("/v1/tenants/{}/email-jobs?status=dead", tenant.tenant_id);
    let answer = app.query(&path, Some(&tenant.admin_token), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let items = answer.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["job_id"], json!(job.job_id));
    assert_eq!(items[0]["template"], "welcome");
    assert!(
        items[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("550")
    );
    assert!(answer.headers.contains_key("x-projection-position"));
    assert_eq!(
        app.query(&path, Some(&user.token), None).await.status,
        StatusCode::FORBIDDEN
    );
    let other = app.sign_up_tenant("Other").await;
    assert_eq!(
        app.query(&path, Some(&other.admin_token), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for bad in [
        "?status=lost",
        "?status=dead&limit=0",
        "?cursor=nonsense",
        "?colour=red",
    ] {
        let answer = app
            .query(
                &format!("/v1/tenants/{}/email-jobs{bad}", tenant.tenant_id),
                Some(&tenant.admin_token),
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            answer.body
        );
        assert!(answer.is_problem());
    }

    // The mailbox is fixed; the operator retries the dead job.
    smtp.accept_everyone();
    let (ok, stdout, stderr) = crate::cli::run(
        &pipeline,
        "projector",
        &["email-jobs", "list", "--status", "dead"],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&job.job_id.to_string()), "{stdout}");
    let (ok, stdout, stderr) = crate::cli::run(
        &pipeline,
        "projector",
        &["email-jobs", "retry", &job.job_id.to_string()],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 job(s) queued again"), "{stdout}");
    let job = wait_for_job(app, user.user_id, "welcome", |j| j.status == "sent").await;
    assert_eq!(job.note.as_deref(), Some("retried by an operator"));
    assert_eq!(smtp.wait_for(&user.email, 1, WAIT).await.len(), 1);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn mail_waits_out_an_smtp_outage_and_is_delivered_once_the_server_is_back() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    smtp.stop();
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let tenant = pipeline.app.sign_up_tenant("Outage").await;

    let job = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "pending" && j.attempts >= 2
    })
    .await;
    assert!(job.last_error.is_some(), "{job:?}");
    smtp.restart().await;
    let job = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "sent"
    })
    .await;
    assert!(job.attempts >= 3, "{job:?}");
    settle(&pipeline).await;
    assert_eq!(smtp.received_by(&tenant.admin_email).len(), 1);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn two_workers_never_send_the_same_job_twice() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn().await;
    let pool = infra::db::pool(&app.database_url, 8).expect("pool");
    let tenant_id = Uuid::new_v4();
    let total = 60;
    for i in 0..total {
        infra::email_jobs::enqueue(
            &app.db,
            &infra::email_jobs::NewJob {
                tenant_id,
                user_id: Uuid::new_v4(),
                event_id: Uuid::new_v4(),
                position: i,
                template: infra::email_jobs::Template::Welcome,
                recipient: format!("w{i}@example.com"),
                variables: json!({"display_name": format!("W{i}"), "tenant_name": "Race"}),
                due_at: chrono::Utc::now(),
            },
        )
        .await
        .expect("enqueue");
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..2 {
        let worker = Arc::new(EmailWorker {
            pool: pool.clone(),
            mailer: Arc::new(
                Mailer::new(
                    Some(&smtp.url()),
                    std::path::PathBuf::new(),
                    Duration::from_secs(5),
                    None,
                )
                .expect("mailer"),
            ),
            settings: WorkerSettings {
                workers: 3,
                poll_interval: Duration::from_millis(10),
                ..Default::default()
            },
            keys: Arc::new(infra::crypto::KeyRing::new(
                infra::crypto::MasterKey::generate().expect("rng"),
            )),
        });
        workers.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sent: i64 = app
            .db
            .query_one("SELECT count(*) FROM email_jobs WHERE status = 'sent'", &[])
            .await
            .expect("count")
            .get(0);
        if sent == total {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sent} of {total} sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    for worker in workers {
        worker.await.expect("worker");
    }
    let received = smtp.received();
    let mut ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        received.len(),
        total as usize,
        "every job sent exactly once"
    );
    assert_eq!(ids.len(), total as usize);
    let retried: i64 = app
        .db
        .query_one("SELECT count(*) FROM email_jobs WHERE attempts <> 1", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(retried, 0);
}

#[tokio::test]
async fn replaying_the_other_projections_sends_nothing_and_email_jobs_refuse_replay() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    let projector = pipeline.spawn_projector();
    let tenant = pipeline.app.sign_up_tenant("Replay").await;
    let user = pipeline.app.sign_up_user(tenant.tenant_id, "Grace").await;
    assert_eq!(smtp.wait_for(&user.email, 1, WAIT).await.len(), 1);
    pipeline.wait_for_projections().await;

    for projection in Projection::ALL {
        projector::replay::replay(&pipeline.pool, &pipeline.keys, projection, None, false)
            .await
            .expect("replay");
    }
    let refused = projector::replay::replay(
        &pipeline.pool,
        &pipeline.keys,
        Projection::EmailJobs,
        None,
        false,
    )
    .await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("never replayed")),
        "replaying email jobs is refused"
    );
    let (ok, _, stderr) = crate::cli::run(&pipeline, "projector", &["replay", "email-jobs"]);
    assert!(!ok);
    assert!(stderr.contains("never replayed"), "{stderr}");
    settle(&pipeline).await;
    assert_eq!(smtp.received_by(&user.email).len(), 1);
    assert_eq!(smtp.received_by(&tenant.admin_email).len(), 1);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_worker_killed_mid_send_leaves_the_job_to_the_next_worker_after_its_lease() {
    let (pipeline, smtp) = mail_pipeline(|settings| {
        settings.email_worker.lease = Duration::from_secs(2);
    })
    .await;
    smtp.stall_next_data();
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let tenant = pipeline.app.sign_up_tenant("Crash").await;
    // The server has the message but never answers: the worker is mid-send.
    assert_eq!(smtp.wait_for(&tenant.admin_email, 1, WAIT).await.len(), 1);
    let job = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "sending"
    })
    .await;
    projector.kill().await;

    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let sent = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "sent"
    })
    .await;
    assert_eq!(sent.job_id, job.job_id);
    assert_eq!(sent.attempts, 2);
    let mails = smtp.received_by(&tenant.admin_email);
    // The one window SMTP leaves: the server took the first copy before the crash. The
    // re-send carries the same Message-ID, so it is recognisable as the same message.
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].message_id(), mails[1].message_id());
    assert_eq!(mails[1].message_id(), sent.message_id);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn without_smtp_url_mails_are_written_as_files() {
    let pipeline = Pipeline::start().await;
    assert!(pipeline.settings.smtp_url.is_none());
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let tenant = pipeline.app.sign_up_tenant("Files").await;
    let job = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "sent"
    })
    .await;
    let file = pipeline
        .settings
        .mail_dir()
        .join(format!("{}.eml", job.job_id));
    let mail = std::fs::read_to_string(&file).expect("the mail file");
    assert!(mail.contains("Subject: Welcome to "), "{mail}");
    assert!(mail.contains("Hello Files Admin,"), "{mail}");
    assert!(mail.contains(&tenant.admin_email), "{mail}");
    assert!(mail.contains(&job.message_id), "{mail}");
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn admin_actions_and_session_revocations_each_deliver_their_notice() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Notices").await;
    let user = app.sign_up_user(tenant.tenant_id, "Linus").await;
    let target = format!("/v1/tenants/{}/users/{}", tenant.tenant_id, user.user_id);

    // A stolen refresh token: the second use revokes the session (a security alert).
    let refreshed = app.refresh(&user.refresh_token).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let reused = app.refresh(&user.refresh_token).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{:?}", reused.body);
    // A plain logout: a confirmation.
    let login = app.log_in(tenant.tenant_id, &user.email, PASSWORD).await;
    let answer = app
        .revoke_session(login.id("session_id"), &login.str("access_token"))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{:?}", answer.body);
    for body in [
        json!({"role": "admin"}),
        json!({"status": "deactivated"}),
        json!({"status": "active"}),
    ] {
        let answer = app.patch(&target, Some(&tenant.admin_token), body).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }

    let expected = [
        "Welcome to “Notices”",
        "Security alert: a session was revoked",
        "You signed out",
        "Security alert: your role changed",
        "Security alert: your account was deactivated",
        "Welcome back: your account is active again",
    ];
    let mails = smtp.wait_for(&user.email, expected.len(), WAIT).await;
    let mut subjects: Vec<String> = mails.iter().map(|m| m.subject()).collect();
    subjects.sort();
    let mut wanted: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    wanted.sort();
    assert_eq!(subjects, wanted);
    let role = mails
        .iter()
        .find(|m| m.subject().contains("role"))
        .expect("role notice");
    assert!(role.data.contains("from member to admin"), "{}", role.data);
    assert!(
        role.data.contains("contact an administrator"),
        "{}",
        role.data
    );
    settle(&pipeline).await;
    assert_eq!(smtp.received_by(&user.email).len(), expected.len());
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn erasure_sends_a_deletion_confirmation_and_then_no_job_keeps_the_address() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Forget").await;
    let user = app.sign_up_user(tenant.tenant_id, "Erin").await;
    assert_eq!(smtp.wait_for(&user.email, 1, WAIT).await.len(), 1);
    let answer = app
        .erase_user(tenant.tenant_id, user.user_id, &tenant.admin_token)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);

    let mails = smtp.wait_for(&user.email, 2, WAIT).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].subject(), "Your account was deleted");
    assert!(mails[1].data.contains("Hello Erin,"));
    wait_for_job(app, user.user_id, "account_deleted", |j| {
        j.status == "sent" && j.recipient.is_none()
    })
    .await;
    settle(&pipeline).await;
    let dump: String = app
        .db
        .query(
            "SELECT coalesce(string_agg(j::text, ' '), '') FROM email_jobs j
             UNION ALL SELECT coalesce(string_agg(a::text, ' '), '') FROM email_job_attempts a",
            &[],
        )
        .await
        .expect("dump")
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect();
    assert!(
        !dump.contains(&user.email),
        "the address survived in the queue: {dump}"
    );
    assert!(!dump.contains("Erin"), "the name survived in the queue");
    assert_eq!(smtp.received_by(&user.email).len(), 2);
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn the_per_recipient_rate_limit_defers_notices_and_alerts_spend_a_budget_of_their_own() {
    let (pipeline, smtp) = mail_pipeline(|settings| {
        settings.email_worker.rate_limit_per_hour = 2;
        settings.email_policy.coalesce_window = Duration::ZERO;
    })
    .await;
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Limits").await;
    let user = app.sign_up_user(tenant.tenant_id, "Rita").await;
    assert_eq!(smtp.wait_for(&user.email, 1, WAIT).await.len(), 1);
    for (index, name) in ["Rita A", "Rita B", "Rita C"].into_iter().enumerate() {
        let answer = app
            .update_me(&user.token, json!({"display_name": name}))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        // One at a time, so that the limit is reached in a known order: the next update
        // waits until this one's notice has been sent, deferred or coalesced.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let jobs = jobs_of(app, user.user_id).await;
            let notices: Vec<&Job> = jobs
                .iter()
                .filter(|j| j.template == "profile_updated")
                .collect();
            let handled = notices.iter().all(|j| {
                j.status == "sent" || j.note.as_deref().is_some_and(|n| n.starts_with("deferred"))
            });
            let events: i32 = notices.iter().map(|j| j.coalesced_events).sum();
            if handled && events > index as i32 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the notice of update {index} was not handled: {jobs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let answer = app
        .manage_user(
            tenant.tenant_id,
            user.user_id,
            &tenant.admin_token,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);

    wait_for_job(app, user.user_id, "role_changed", |j| j.status == "sent").await;
    let deferred = wait_for_job(app, user.user_id, "profile_updated", |j| {
        j.status == "pending" && j.note.as_deref().is_some_and(|n| n.starts_with("deferred"))
    })
    .await;
    assert_eq!(deferred.attempts, 0, "a deferral is not a failed attempt");
    settle(&pipeline).await;
    let jobs = jobs_of(app, user.user_id).await;
    let sent_notices = jobs
        .iter()
        .filter(|j| !matches!(j.template.as_str(), "role_changed") && j.status == "sent")
        .count();
    assert_eq!(sent_notices, 2, "{jobs:#?}");
    let due_later: bool = app
        .db
        .query_one(
            "SELECT bool_and(due_at > now() + interval '50 minutes') FROM email_jobs
              WHERE user_id = $1 AND status = 'pending'",
            &[&user.user_id],
        )
        .await
        .expect("due")
        .get(0);
    assert!(due_later, "deferred to when the hour allows");
    // Two notices and the security alert.
    assert_eq!(smtp.received_by(&user.email).len(), 3);
    projector.stop().await;
    pipeline.finish().await;
}

/// A message to someone@example.com, for sending through a mailer directly.
fn a_message(subject: &str) -> lettre::Message {
    lettre::Message::builder()
        .from(
            "Eventra <no-reply@eventra.localhost>"
                .parse()
                .expect("from"),
        )
        .to("someone@example.com".parse().expect("to"))
        .subject(subject)
        .body("x".to_owned())
        .expect("message")
}

/// The outcomes of a job's attempts, in order.
async fn outcomes_of(app: &TestApp, job_id: Uuid) -> Vec<String> {
    app.db
        .query(
            "SELECT outcome FROM email_job_attempts WHERE job_id = $1 ORDER BY attempt",
            &[&job_id],
        )
        .await
        .expect("attempts")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn a_failure_that_never_clears_is_dead_after_the_last_attempt() {
    let (pipeline, smtp) = mail_pipeline(|settings| {
        settings.email_worker.max_attempts = 3;
        settings.email_worker.retry_base = Duration::from_millis(20);
        settings.email_worker.retry_max = Duration::from_millis(50);
    })
    .await;
    smtp.answer_next(100, "421 4.3.2 still busy");
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    let tenant = pipeline.app.sign_up_tenant("Hopeless").await;
    let job = wait_for_job(&pipeline.app, tenant.admin_id, "welcome", |j| {
        j.status == "dead"
    })
    .await;
    assert_eq!(job.attempts, 3, "EMAIL_MAX_ATTEMPTS attempts, then no more");
    assert_eq!(
        outcomes_of(&pipeline.app, job.job_id).await,
        ["retry", "retry", "dead"]
    );
    assert!(
        job.last_error.as_deref().is_some_and(|e| e.contains("421")),
        "{job:?}"
    );
    assert!(smtp.received_by(&tenant.admin_email).is_empty());
    settle(&pipeline).await;
    let after = jobs_of(&pipeline.app, tenant.admin_id).await;
    assert_eq!(
        after
            .iter()
            .find(|j| j.job_id == job.job_id)
            .map(|j| j.attempts),
        Some(3)
    );
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn events_older_than_the_age_limit_mail_no_one() {
    let (pipeline, smtp) = mail_pipeline(|settings| {
        settings.email_policy.max_event_age = Duration::from_secs(3600);
        settings.email_policy.coalesce_window = Duration::ZERO;
    })
    .await;
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Aged").await;
    // A profile update recorded two hours ago (as a store restored from a backup holds),
    // then one made now.
    app.append_rename(
        tenant.tenant_id,
        tenant.admin_id,
        "Old News",
        chrono::Utc::now() - chrono::Duration::hours(2),
    )
    .await
    .expect("append");
    let fresh = app
        .update_me(&tenant.admin_token, json!({"display_name": "Fresh News"}))
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{:?}", fresh.body);
    let projector = pipeline.spawn_projector_of(the_projector_without_search());
    wait_for_job(app, tenant.admin_id, "profile_updated", |j| {
        j.status == "sent"
    })
    .await;
    settle(&pipeline).await;
    let jobs = jobs_of(app, tenant.admin_id).await;
    let notices: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.template == "profile_updated")
        .collect();
    assert_eq!(notices.len(), 1, "only the fresh update mails: {jobs:#?}");
    let mails = smtp.received_by(&tenant.admin_email);
    assert_eq!(mails.len(), 2, "the welcome and the fresh notice");
    assert!(mails.iter().all(|m| !m.data.contains("Old News")));
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_worker_that_outlived_its_lease_cannot_overwrite_the_next_workers_result() {
    let (pipeline, smtp) = mail_pipeline(|_| {}).await;
    let app = &pipeline.app;
    let tenant_id = Uuid::new_v4();
    let user_id = Uuid::new_v4();
    infra::email_jobs::enqueue(
        &app.db,
        &infra::email_jobs::NewJob {
            tenant_id,
            user_id,
            event_id: Uuid::new_v4(),
            position: 1,
            template: infra::email_jobs::Template::Welcome,
            recipient: "late@example.com".into(),
            variables: json!({"display_name": "Late", "tenant_name": "Leases"}),
            due_at: chrono::Utc::now(),
        },
    )
    .await
    .expect("enqueue");
    let worker = |lease: Duration, timeout: Duration| {
        Arc::new(EmailWorker {
            pool: pipeline.pool.clone(),
            mailer: Arc::new(
                Mailer::new(Some(&smtp.url()), std::path::PathBuf::new(), timeout, None)
                    .expect("mailer"),
            ),
            settings: WorkerSettings {
                workers: 1,
                poll_interval: Duration::from_millis(20),
                lease,
                ..Default::default()
            },
            keys: Arc::clone(&pipeline.keys),
        })
    };
    // The first worker's send hangs (the server took the data and never answers) past its
    // short lease; it gives up only when its SMTP timeout ends, much later.
    smtp.stall_next_data();
    let (stop_first, first_shutdown) = tokio::sync::watch::channel(false);
    let first = tokio::spawn(
        worker(Duration::from_millis(300), Duration::from_secs(4)).run(first_shutdown),
    );
    wait_for_job(app, user_id, "welcome", |j| {
        j.status == "sending" && j.attempts == 1
    })
    .await;
    assert_eq!(smtp.wait_for("late@example.com", 1, WAIT).await.len(), 1);
    // A second worker claims the job once the lease ran out and delivers it.
    let (stop_second, second_shutdown) = tokio::sync::watch::channel(false);
    let second =
        tokio::spawn(worker(Duration::from_secs(60), Duration::from_secs(5)).run(second_shutdown));
    let sent = wait_for_job(app, user_id, "welcome", |j| j.status == "sent").await;
    assert_eq!(sent.attempts, 2);
    let _ = stop_second.send(true);
    second.await.expect("second worker");
    // The first worker's attempt ends (it timed out) and its outcome is refused.
    let _ = stop_first.send(true);
    tokio::time::timeout(integration_tests::WAIT_LIMIT, first)
        .await
        .expect("the first worker's hung send ends (SMTP_TIMEOUT bounds it)")
        .expect("first worker");
    let jobs = jobs_of(app, user_id).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].status, "sent",
        "the late worker overwrote the result: {jobs:#?}"
    );
    assert_eq!(jobs[0].attempts, 2);
    assert_eq!(jobs[0].last_error, None, "{jobs:#?}");
    assert_eq!(outcomes_of(app, sent.job_id).await, ["sent"]);
    pipeline.finish().await;
}

#[tokio::test]
async fn mail_goes_out_over_starttls_and_smtps_to_a_server_of_the_organisations_own_ca() {
    let certificates = integration_tests::smtp::TestCertificates::generate();
    for mode in [
        integration_tests::smtp::TlsMode::StartTls,
        integration_tests::smtp::TlsMode::Implicit,
    ] {
        let smtp = SmtpServer::start_tls(&certificates, mode).await;
        let ca_file = certificates.ca_file();
        let mut pipeline = Pipeline::start().await;
        pipeline.settings.smtp_url = Some(smtp.url().into());
        pipeline.settings.smtp_ca_file = Some(ca_file.clone());
        let projector = pipeline.spawn_projector_of(the_projector_without_search());
        let tenant = pipeline.app.sign_up_tenant("Sealed").await;
        let mails = smtp.wait_for(&tenant.admin_email, 1, WAIT).await;
        assert_eq!(mails.len(), 1, "{mode:?}");
        assert!(mails[0].tls, "{mode:?}: the message came in the clear");
        assert_eq!(mails[0].subject(), "Welcome to “Sealed”");
        projector.stop().await;
        pipeline.finish().await;

        // Without the CA the server's certificate is not trusted: nothing is sent in the
        // clear instead, the job waits to be retried.
        let mailer = Mailer::new(
            Some(&smtp.url()),
            std::path::PathBuf::new(),
            Duration::from_secs(5),
            None,
        )
        .expect("mailer");
        let message = a_message("untrusted");
        let before = smtp.received().len();
        let outcome = mailer.send(Uuid::new_v4(), &message).await;
        assert!(
            matches!(
                outcome,
                Err(projector::email::transport::SendError::Transient(_))
            ),
            "{mode:?}: {outcome:?}"
        );
        assert_eq!(
            smtp.received().len(),
            before,
            "{mode:?}: sent to an untrusted server"
        );
    }
}

#[tokio::test]
async fn a_server_that_requires_starttls_gets_nothing_from_a_client_that_does_not_ask() {
    let certificates = integration_tests::smtp::TestCertificates::generate();
    let smtp =
        SmtpServer::start_tls(&certificates, integration_tests::smtp::TlsMode::StartTls).await;
    let plain = format!("smtp://127.0.0.1:{}", smtp.port);
    let mailer = Mailer::new(
        Some(&plain),
        std::path::PathBuf::new(),
        Duration::from_secs(5),
        None,
    )
    .expect("mailer");
    let message = a_message("in the clear");
    let outcome = mailer.send(Uuid::new_v4(), &message).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(smtp.received().is_empty());
    // A CA file with a URL that asks for no TLS is a configuration error, not a silent
    // downgrade.
    assert!(
        Mailer::new(
            Some(&plain),
            std::path::PathBuf::new(),
            Duration::from_secs(5),
            Some(&certificates.ca_file())
        )
        .is_err()
    );
}
