//! What this machine's Postgres, NATS and CPU can do at all, measured in the same run as the
//! system so that ratios compare like with like.

use std::io::Write as _;
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde::Serialize;

/// A row shaped like an event: same columns, indexes and constraints (`LIKE events
/// INCLUDING ALL`, without the triggers), a ~400-byte `data` document.
const APPEND_SCRIPT: &str = r#"INSERT INTO bench_events (event_id, tenant_id, aggregate_type, aggregate_id, sequence, type, version, data, metadata, occurred_at)
VALUES (gen_random_uuid(), '0193b3a0-0000-7000-8000-000000000001', 'user', gen_random_uuid(), 1, 'user.profile_updated', 2,
'{"user_id": "0193b3a0-0000-7000-8000-000000000002", "updated_by": "0193b3a0-0000-7000-8000-000000000002", "display_name": "pii:v1:Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy", "phone": "pii:v1:Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy", "locale": "en-GB", "changed": ["display_name", "phone", "locale"]}',
'{"actor_id": "0193b3a0-0000-7000-8000-000000000002", "source": "command-api", "request_id": "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "correlation_id": "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "data_subject": "0193b3a0-0000-7000-8000-000000000002"}',
now());
"#;

fn pgbench_binary() -> String {
    if let Ok(path) = std::env::var("PGBENCH") {
        return path;
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| "pgbench".to_owned(), |p| p.display().to_string())
}

/// Raw appends per second at `clients` connections, for `seconds`.
pub async fn raw_append(database_url: &str, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    let client = crate::connect(database_url).await?;
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pgcrypto;
             DROP TABLE IF EXISTS bench_events;
             CREATE TABLE bench_events (LIKE events INCLUDING ALL);",
        )
        .await
        .context("creating bench_events")?;
    let config = tokio_postgres::Config::from_str(database_url)?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("root").to_owned();
    let dbname = config.get_dbname().unwrap_or("postgres").to_owned();
    let mut script = tempfile(&format!("eventra-bench-append-{}.sql", std::process::id()))?;
    script.1.write_all(APPEND_SCRIPT.as_bytes())?;
    drop(script.1);
    let output = tokio::task::spawn_blocking({
        let script = script.0.clone();
        move || {
            Command::new(pgbench_binary())
                .args(["-n", "-h", &host, "-p", &port.to_string(), "-U", &user])
                .args([
                    "-c",
                    &clients.to_string(),
                    "-j",
                    "2",
                    "-T",
                    &seconds.to_string(),
                ])
                .arg("-f")
                .arg(&script)
                .arg(&dbname)
                .output()
        }
    })
    .await?
    .context("running pgbench (PostgreSQL's server package has it)")?;
    let _ = std::fs::remove_file(&script.0);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))?;
    client
        .batch_execute("DROP TABLE IF EXISTS bench_events")
        .await?;
    Ok(crate::load::round(tps))
}

fn tempfile(name: &str) -> anyhow::Result<(std::path::PathBuf, std::fs::File)> {
    let path = std::env::temp_dir().join(name);
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

/// Every event, in position order, straight out of Postgres: rows per second.
pub async fn ordered_read(database_url: &str) -> anyhow::Result<(u64, f64)> {
    let client = crate::connect(database_url).await?;
    let started = Instant::now();
    let stream = client
        .copy_out("COPY (SELECT * FROM events ORDER BY position) TO STDOUT")
        .await?;
    futures_util::pin_mut!(stream);
    let mut rows = 0u64;
    while let Some(chunk) = stream.next().await {
        rows += chunk?.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((rows, crate::load::round(rows as f64 / seconds)))
}

#[derive(Debug, Clone, Serialize)]
pub struct Argon2Rate {
    pub threads: usize,
    pub verifies_per_second: f64,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Argon2id verifications per second with the configured parameters on `threads` cores.
pub fn argon2(threads: usize, seconds: f64) -> anyhow::Result<Argon2Rate> {
    let params = infra::auth::PasswordParams::default();
    let hashing = Arc::new(infra::auth::PasswordHashing::new(params)?);
    let hash = Arc::new(hashing.hash("correct horse battery staple")?);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (hashing, hash, done) =
                (Arc::clone(&hashing), Arc::clone(&hash), Arc::clone(&done));
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let _ = hashing.verify("correct horse battery staple", &hash);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(Argon2Rate {
        threads: threads.max(1),
        verifies_per_second: crate::load::round(
            done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        ),
        memory_kib: params.memory_kib,
        iterations: params.iterations,
        parallelism: params.parallelism,
    })
}

/// JetStream publishes per second with pipelined acknowledgements (a window of 256), of
/// `messages` event-sized messages, to a stream made for it and deleted after.
pub async fn jetstream(nats_url: &str, messages: u64, payload: Vec<u8>) -> anyhow::Result<f64> {
    let client = async_nats::connect(nats_url)
        .await
        .context("connecting to NATS")?;
    let js = async_nats::jetstream::new(client);
    let name = format!("BENCH_{}", uuid::Uuid::new_v4().simple());
    let subject = format!("bench.{}", uuid::Uuid::new_v4().simple());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{subject}.>")],
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("creating the bench stream: {e}"))?;
    let started = Instant::now();
    let mut window = std::collections::VecDeque::new();
    for n in 0..messages {
        let ack = js
            .publish(format!("{subject}.{}", n % 16), payload.clone().into())
            .await
            .map_err(|e| anyhow::anyhow!("publishing: {e}"))?;
        window.push_back(ack);
        if window.len() >= 256
            && let Some(ack) = window.pop_front()
        {
            ack.await
                .map_err(|e| anyhow::anyhow!("acknowledgement: {e}"))?;
        }
    }
    for ack in window {
        ack.await
            .map_err(|e| anyhow::anyhow!("acknowledgement: {e}"))?;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    Ok(crate::load::round(rate))
}
