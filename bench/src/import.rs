//! The bulk import scenario: a CSV of `rows` users uploaded into a tenant of its own and
//! polled to `completed` (rows/s end to end), `PATCH /v1/me` by the writers meanwhile (its
//! p99 while the import runs), and the baseline: the same users as event-shaped rows
//! (`user.created`, `tenant.member_joined`, `user.profile_updated` for the row's locale,
//! `invitation.created`: the four events the import writes per row) written by one
//! `INSERT … SELECT` on the server, the fastest honest way to put that many rows in a table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, PASSWORD, is, uuid_of};
use crate::load::{self, Summary};

pub struct ImportRun {
    pub json: Value,
    pub rows_per_second: f64,
    pub baseline_rows_per_second: f64,
    pub patch_during: Summary,
}

pub async fn measure(
    api: &Arc<Api>,
    writers: &Arc<Vec<String>>,
    database_url: &str,
    rows: u64,
) -> anyhow::Result<ImportRun> {
    let admin_email = format!("import-admin-{}@bench.example.com", Uuid::new_v4().simple());
    let (status, body) = api
        .post(
            "/v1/tenants",
            None,
            json!({"name": "Import", "plan": "premium", "admin": {"email": admin_email, "password": PASSWORD, "display_name": "Importer"}}),
        )
        .await?;
    if status != 201 {
        bail!("tenant signup answered {status}: {body}");
    }
    let tenant_id = uuid_of(&body, "tenant_id")?;
    let token = api.log_in(tenant_id, &admin_email).await?;
    let domain = format!("{}.import.example", Uuid::new_v4().simple());
    let mut csv = String::from("email,display_name,locale\n");
    for n in 0..rows {
        csv.push_str(&format!("person{n}@{domain},Person {n},en\n"));
    }

    // Interactive writes the whole time, in one-second slices.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (api, writers, stop) = (Arc::clone(api), Arc::clone(writers), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut slices = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (api, writers) = (Arc::clone(&api), Arc::clone(&writers));
                slices.push(
                    load::closed(
                        8,
                        Duration::from_secs(1),
                        move |worker, n| {
                            let (api, writers) = (Arc::clone(&api), Arc::clone(&writers));
                            async move {
                                api.patch_locale(&writers[worker % writers.len()], n)
                                    .await
                            }
                        },
                        is(200),
                    )
                    .await,
                );
            }
            slices
        })
    };

    let started = Instant::now();
    let response = api
        .http
        .post(format!("{}/v1/tenants/{tenant_id}/imports", api.command))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 202 {
        stop.store(true, Ordering::Relaxed);
        bail!("the import upload answered {status}: {body}");
    }
    let uploaded = started.elapsed().as_secs_f64();
    let import_id = uuid_of(&body, "import_id")?;
    let view = loop {
        let view: Value = api
            .http
            .get(format!(
                "{}/v1/tenants/{tenant_id}/imports/{import_id}",
                api.query
            ))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        match view["status"].as_str() {
            Some("completed") => break view,
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => {
                stop.store(true, Ordering::Relaxed);
                bail!("the import ended as {view}");
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let slices = load.await?;
    let patch_during = worst_of(&slices);

    let baseline_seconds = baseline(database_url, rows).await?;
    let rows_per_second = rows as f64 / seconds;
    let baseline_rows_per_second = rows as f64 / baseline_seconds;
    Ok(ImportRun {
        json: json!({
            "rows": rows,
            "seconds": crate::load::round(seconds),
            "upload_seconds": crate::load::round(uploaded),
            "rows_per_second": crate::load::round(rows_per_second),
            "created": view["created"],
            "baseline_seconds": crate::load::round(baseline_seconds),
            "patch_me_c8_during": patch_during,
        }),
        rows_per_second,
        baseline_rows_per_second,
        patch_during,
    })
}

/// The slices together: their requests and rate, and the worst slice's percentiles.
fn worst_of(slices: &[Summary]) -> Summary {
    let requests: u64 = slices.iter().map(|s| s.requests).sum();
    let seconds: f64 = slices.iter().map(|s| s.seconds).sum();
    let worst = |f: fn(&Summary) -> f64| slices.iter().map(f).fold(0.0, f64::max);
    let mut errors = std::collections::BTreeMap::new();
    for slice in slices {
        for (status, count) in &slice.errors {
            *errors.entry(*status).or_insert(0) += count;
        }
    }
    Summary {
        requests,
        seconds,
        per_second: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        p50_ms: worst(|s| s.p50_ms),
        p95_ms: worst(|s| s.p95_ms),
        p99_ms: worst(|s| s.p99_ms),
        max_ms: worst(|s| s.max_ms),
        errors,
        cpu_percent: std::collections::BTreeMap::new(),
    }
}

/// Seconds to write `rows` users' four event-shaped rows each into a scratch table.
async fn baseline(database_url: &str, rows: u64) -> anyhow::Result<f64> {
    let client = crate::connect(database_url).await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_import_baseline;
             CREATE TABLE bench_import_baseline (event_id uuid PRIMARY KEY, tenant_id uuid,
                 aggregate_id uuid, type text, data jsonb, metadata jsonb);",
        )
        .await?;
    let count = i64::try_from(rows * 4)?;
    let started = Instant::now();
    client
        .execute(
            "INSERT INTO bench_import_baseline
             SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', gen_random_uuid(),
                    (ARRAY['user.created', 'tenant.member_joined', 'user.profile_updated',
                           'invitation.created'])[g % 4 + 1],
                    jsonb_build_object('email', 'person' || g || '@import.example',
                                       'display_name', 'Person ' || g, 'role', 'member'),
                    '{\"source\": \"bench\"}'::jsonb
               FROM generate_series(1::bigint, $1::bigint) AS g",
            &[&count],
        )
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    client
        .batch_execute("DROP TABLE bench_import_baseline")
        .await?;
    Ok(seconds)
}
