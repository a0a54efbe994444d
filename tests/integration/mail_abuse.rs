//! Abuse through email (ADR 0026): a stranger who signs someone else's address up in many
//! tenants cannot flood that inbox, not even with security alerts, and the names they
//! choose never speak with the platform's voice.

use std::time::Duration;

use integration_tests::smtp::Received;
use integration_tests::{PASSWORD, Pipeline};
use projector::projections::Projection;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

const TENANTS: usize = 8;
const ALERTS_PER_HOUR: i64 = 3;
const NOTICES_PER_HOUR: i64 = 3;

fn without_search() -> Vec<Projection> {
    let mut projections = Projection::ALL.to_vec();
    projections.push(Projection::EmailJobs);
    projections
}

/// Every mail the server took for any spelling of the victim's inbox.
fn inbox(mails: &[Received], victim: &str) -> Vec<Received> {
    let local = victim.split('@').next().unwrap_or_default();
    mails
        .iter()
        .filter(|m| {
            m.to.iter().any(|to| {
                let to = to.to_lowercase();
                to.starts_with(local) && to.ends_with("@inbox.example")
            })
        })
        .cloned()
        .collect()
}

/// `(template, status, sent_with, note, due in the future)` of every job of the inbox.
async fn jobs(pipeline: &Pipeline, victim: &str) -> Vec<(String, String, Option<Uuid>, bool)> {
    pipeline
        .app
        .db
        .query(
            "SELECT template, status, sent_with, due_at > now() + interval '50 minutes'
               FROM email_jobs WHERE mailbox = $1 ORDER BY created_at",
            &[&victim],
        )
        .await
        .expect("jobs")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// Waits until every job of the inbox is settled: sent, or waiting for a later hour.
async fn settled(pipeline: &Pipeline, victim: &str, alerts: usize) {
    integration_tests::wait_until(
        "every email of the inbox to be sent or deferred",
        || async {
            let jobs = jobs(pipeline, victim).await;
            jobs.iter().filter(|j| j.0 == "account_locked").count() == alerts
                && jobs.iter().all(|(_, status, _, later)| {
                    status == "sent" || (status == "pending" && *later)
                })
        },
    )
    .await;
}

#[tokio::test]
async fn a_stranger_cannot_flood_an_inbox_with_alerts_from_many_tenants_and_none_is_lost() {
    let (mut pipeline, smtp) = Pipeline::start_with_mail().await;
    pipeline.settings.email_worker.alerts_per_hour = ALERTS_PER_HOUR;
    pipeline.settings.email_worker.rate_limit_per_hour = NOTICES_PER_HOUR;
    let projector = pipeline.spawn_projector_of(without_search());
    let app = &pipeline.app;
    let victim = format!("victim-{}@inbox.example", Uuid::new_v4().simple());

    // The stranger signs the victim's address up as the admin of eight tenants, spelled
    // three ways (one inbox), names each tenant and the admin with a link, and guesses
    // wrong passwords until every account locks: eight security alerts, eight welcomes.
    for i in 0..TENANTS {
        let address = match i % 3 {
            0 => victim.clone(),
            1 => victim.to_uppercase(),
            _ => victim.replacen('@', &format!("+{i}@"), 1),
        };
        let signup = app
            .post(
                "/v1/tenants",
                None,
                json!({"name": format!("Org{i} https://evil.example/unlock"),
                       "admin": {"email": address, "password": PASSWORD,
                                 "display_name": "Security Team at evil.example"}}),
            )
            .await;
        assert_eq!(signup.status, StatusCode::CREATED, "{:?}", signup.body);
        let tenant_id = signup.id("tenant_id");
        for _ in 0..5 {
            let guess = app.log_in(tenant_id, &address, "a wrong guess").await;
            assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
        }
    }
    settled(&pipeline, &victim, TENANTS).await;

    // Within the hour: at most the budget of alerts and of notices reached the inbox.
    let first_hour = inbox(&smtp.received(), &victim);
    let alerts: Vec<&Received> = first_hour
        .iter()
        .filter(|m| m.subject().starts_with("Security alert"))
        .collect();
    assert_eq!(alerts.len() as i64, ALERTS_PER_HOUR, "{first_hour:#?}");
    assert!(
        first_hour.len() as i64 <= ALERTS_PER_HOUR + NOTICES_PER_HOUR,
        "{} mails in the first hour",
        first_hour.len()
    );
    // No alert is lost: each went out (alone or with another) or waits for the hour.
    let jobs_now = jobs(&pipeline, &victim).await;
    let locked: Vec<_> = jobs_now
        .iter()
        .filter(|j| j.0 == "account_locked")
        .collect();
    assert_eq!(locked.len(), TENANTS);
    let waiting = locked.iter().filter(|j| j.1 == "pending").count();
    assert!(waiting > 0, "the attack outran the budget: {locked:?}");
    assert!(
        locked.iter().all(|j| j.1 == "sent" || j.3),
        "waiting alerts wait for the hour: {locked:?}"
    );

    // The hour moves on for the first alert: one slot opens, and the one email that takes
    // it carries every alert still waiting.
    app.db
        .execute(
            "UPDATE email_jobs SET sent_at = sent_at - interval '1 hour'
              WHERE job_id = (SELECT job_id FROM email_jobs
                               WHERE mailbox = $1 AND security AND status = 'sent' AND sent_with IS NULL
                               ORDER BY sent_at LIMIT 1)",
            &[&victim],
        )
        .await
        .expect("the first alert leaves the hour");
    app.db
        .execute(
            "UPDATE email_jobs SET due_at = now() WHERE mailbox = $1 AND security AND status = 'pending'",
            &[&victim],
        )
        .await
        .expect("the waiting alerts are due");
    integration_tests::wait_until("every alert to be sent", || async {
        jobs(&pipeline, &victim)
            .await
            .iter()
            .filter(|j| j.0 == "account_locked")
            .all(|j| j.1 == "sent")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = inbox(&smtp.received(), &victim);
    let alerts: Vec<&Received> = all
        .iter()
        .filter(|m| m.subject().starts_with("Security alert"))
        .collect();
    assert_eq!(
        alerts.len() as i64,
        ALERTS_PER_HOUR + 1,
        "one more alert email, not one per alert"
    );
    let carried = jobs(&pipeline, &victim)
        .await
        .iter()
        .filter(|j| j.2.is_some())
        .count();
    assert_eq!(carried, TENANTS - ALERTS_PER_HOUR as usize - 1);
    let told: usize = alerts
        .iter()
        .filter_map(|m| {
            let text = m.text();
            let at = text.find(" more security alert(s)")?;
            text[..at].rsplit(' ').next()?.parse::<usize>().ok()
        })
        .sum();
    assert_eq!(
        told, carried,
        "the combined email says how many it stands for"
    );
    let combined = alerts
        .iter()
        .map(|m| m.text())
        .find(|t| t.contains("more security alert(s)"))
        .expect("a combined alert");
    assert!(
        combined.contains("sign-in blocked after wrong passwords"),
        "{combined}"
    );

    // Nothing the stranger chose reads like the platform: no link, no domain, never the
    // sender's name or the start of a subject.
    for mail in &all {
        let text = mail.text();
        assert!(!text.contains("evil.example"), "{text}");
        assert!(!text.contains("https://evil"), "{text}");
        assert!(text.contains("evil[.]example"), "{text}");
        assert_eq!(
            mail.header("From").as_deref(),
            Some("Eventra <no-reply@eventra.localhost>")
        );
        assert!(!mail.subject().starts_with("Org"), "{}", mail.subject());
        assert!(
            !mail.subject().contains("evil.example"),
            "{}",
            mail.subject()
        );
    }
    projector.stop().await;
    pipeline.finish().await;
}

#[tokio::test]
async fn a_tenants_hourly_budget_holds_its_notices_but_keeps_room_for_alerts() {
    let (mut pipeline, smtp) = Pipeline::start_with_mail().await;
    // Nine tenths of ten for notices: nine welcomes go, the rest wait; alerts still go.
    pipeline.settings.email_worker.tenant_limit_per_hour = 10;
    let projector = pipeline.spawn_projector_of(without_search());
    let app = &pipeline.app;
    let tenant = app.sign_up_tenant("Budget").await;
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(
            app.sign_up_user(tenant.tenant_id, &format!("Member {i}"))
                .await,
        );
    }
    integration_tests::wait_until("the welcomes to be sent or deferred", || async {
        let row = app
            .db
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'sent'),
                        count(*) FILTER (WHERE status = 'pending' AND note LIKE 'deferred%tenant%')
                   FROM email_jobs WHERE tenant_id = $1 AND template = 'welcome'",
                &[&tenant.tenant_id],
            )
            .await
            .expect("counts");
        row.get::<_, i64>(0) + row.get::<_, i64>(1) == 11
    })
    .await;
    let sent: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM email_jobs WHERE tenant_id = $1 AND status = 'sent'",
            &[&tenant.tenant_id],
        )
        .await
        .expect("sent")
        .get(0);
    assert_eq!(
        sent, 9,
        "notices stop at nine tenths of the tenant's budget"
    );
    // A security alert still goes out.
    let answer = app
        .manage_user(
            tenant.tenant_id,
            users[0].user_id,
            &tenant.admin_token,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    integration_tests::wait_until("the role change's alert to arrive", || async {
        smtp.received_by(&users[0].email)
            .iter()
            .any(|m| m.subject() == "Security alert: your role changed")
    })
    .await;
    projector.stop().await;
    pipeline.finish().await;
}
