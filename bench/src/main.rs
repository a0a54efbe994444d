//! `eventra-bench`: runs the scenarios against a running system (started by
//! `scripts/bench`) and the physical baselines of the same machine, then writes every figure
//! and the ratios between them as JSON, and a table as markdown.

mod api;
mod baselines;
mod cpu;
mod generate;
mod held;
mod import;
mod load;
mod plan;
mod reads;
mod replay;
mod report;
mod writes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use api::{Api, PASSWORD, is, status_of, uuid_of};
use clap::Parser;
use eventstore::EventStore;
use infra::crypto::{KeyRing, MasterKey};
use load::round;
use plan::{Args, Plan};
use report::{Report, open_files_limit, ratio};
use serde_json::{Value, json};
use uuid::Uuid;

pub async fn connect(database_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {database_url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cpu::init(&args.pids);
    let plan = Plan::of(args.quick);
    if let Some(out) = &args.raw_append_out {
        // Before the services start: pgbench needs up to 64 connections of its own.
        let mut raw_append = BTreeMap::new();
        for clients in [1usize, 8, 64] {
            eprintln!("pgbench raw append at {clients} clients");
            let tps = baselines::raw_append(&args.database_url, clients, plan.seconds).await?;
            raw_append.insert(format!("c{clients}"), tps);
        }
        std::fs::write(out, serde_json::to_string(&raw_append)?)?;
        return Ok(());
    }
    let started_at = chrono::Utc::now();
    let seconds = Duration::from_secs(plan.seconds);
    // reqwest's rustls brings no crypto provider of its own: ring is the process's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = Arc::new(Api {
        http: http.clone(),
        command: args.command_url.clone(),
        query: args.query_url.clone(),
    });
    let mut scenarios: BTreeMap<String, Value> = BTreeMap::new();
    let mut baselines: BTreeMap<String, Value> = BTreeMap::new();
    let say = |text: &str| {
        eprintln!(
            "[{:>6.1}s] {text}",
            (chrono::Utc::now() - started_at).num_milliseconds() as f64 / 1000.0
        )
    };

    // The tenant and its writers (through the API: real password hashes and sessions).
    let admin_email = format!("admin-{}@bench.example.com", Uuid::new_v4().simple());
    let (status, body) = api
        .post(
            "/v1/tenants",
            None,
            json!({"name": "Bench", "admin": {"email": admin_email, "password": PASSWORD, "display_name": "Bench Admin"}}),
        )
        .await?;
    if status != 201 {
        bail!("tenant signup answered {status}: {body}");
    }
    let tenant_id = uuid_of(&body, "tenant_id")?;
    let admin_token = api.log_in(tenant_id, &admin_email).await?;
    say("creating the writers");
    let mut writers = Vec::new();
    for chunk in (0..plan.writers).collect::<Vec<_>>().chunks(8) {
        let mut batch = tokio::task::JoinSet::new();
        for &n in chunk {
            let api = Arc::clone(&api);
            batch.spawn(async move {
                let (_, email) = api.sign_up(tenant_id, n).await?;
                api.log_in(tenant_id, &email).await
            });
        }
        while let Some(token) = batch.join_next().await {
            writers.push(token??);
        }
    }
    let writers = Arc::new(writers);

    // Writes: PATCH /v1/me by distinct users.
    let write_c64 = writes::patch_me(&api, &writers, seconds, &mut scenarios, &say).await;

    // Reads and the HTTP ceiling at the same concurrency, then many held connections.
    let read_rates = reads::closed(
        &api,
        &writers,
        plan.big_connections,
        seconds,
        &mut scenarios,
        &say,
    )
    .await;
    let (held, held_connections) = reads::held(
        &api,
        &writers,
        plan.held_connections,
        plan.held_rate,
        seconds,
        &mut scenarios,
        &say,
    )
    .await?;

    // Signup and login at concurrency 8: bounded by password hashing.
    say("signup at concurrency 8");
    let signups = {
        let api = Arc::clone(&api);
        load::closed(
            8,
            seconds,
            move |worker, n| {
                let api = Arc::clone(&api);
                async move {
                    let email = format!("signup-{worker}-{n}-{}@bench.example.com", Uuid::new_v4().simple());
                    status_of(
                        api.http
                            .post(format!("{}/v1/tenants/{tenant_id}/users", api.command))
                            .json(&json!({"email": email, "password": PASSWORD, "display_name": "Signup"}))
                            .send()
                            .await,
                    )
                }
            },
            is(201),
        )
        .await
    };
    scenarios.insert("signup_c8".into(), json!(signups));
    say("login at concurrency 8");
    let logins = {
        let api = Arc::clone(&api);
        let email = admin_email.clone();
        load::closed(
            8,
            seconds,
            move |_, _| {
                let (api, email) = (Arc::clone(&api), email.clone());
                async move {
                    status_of(
                        api.http
                            .post(format!("{}/v1/tenants/{tenant_id}/sessions", api.command))
                            .json(&json!({"email": email, "password": PASSWORD}))
                            .send()
                            .await,
                    )
                }
            },
            is(201),
        )
        .await
    };
    scenarios.insert("login_c8".into(), json!(logins));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    say("argon2 baseline");
    let argon2 = tokio::task::spawn_blocking(move || baselines::argon2(cores, plan.seconds as f64))
        .await??;
    baselines.insert("argon2".into(), json!(argon2));

    // Search over a tenant with many users (generated through the store).
    let master_key = std::env::var("EVENTRA_MASTER_KEY")
        .context("EVENTRA_MASTER_KEY is needed to write events")?;
    let keys = Arc::new(KeyRing::new(MasterKey::from_base64(&master_key)?));
    let hashing = infra::auth::PasswordHashing::new(infra::auth::PasswordParams::default())?;
    let password_hash = hashing.hash(PASSWORD)?;
    let pool = infra::db::pool(&args.database_url, 8)?;
    let store = EventStore::new(pool, Arc::clone(&keys));
    say(&format!(
        "generating {} users for the search",
        plan.search_users
    ));
    let generated_at = Instant::now();
    let loaded = generate::users(
        &store,
        tenant_id,
        0,
        plan.search_users,
        0,
        &password_hash,
        4,
    )
    .await?;
    let generate_seconds = generated_at.elapsed().as_secs_f64();
    say(&format!(
        "{} events generated in {generate_seconds:.1}s; waiting for the search index",
        loaded.events
    ));
    let caught_up_at = Instant::now();
    let users_url = format!("{}/v1/tenants/{tenant_id}/users?q=ada&limit=20", api.query);
    loop {
        let response = http
            .get(&users_url)
            .bearer_auth(&admin_token)
            .header("X-Min-Position", loaded.last_position.to_string())
            .send()
            .await;
        if status_of(response) == 200 {
            break;
        }
        if caught_up_at.elapsed() > Duration::from_secs(900) {
            bail!("the search index did not reach the generated users in 15 minutes");
        }
    }
    let catch_up_seconds = caught_up_at.elapsed().as_secs_f64();
    scenarios.insert(
        "generate_users".into(),
        json!({"users": plan.search_users, "events": loaded.events, "seconds": round(generate_seconds),
               "events_per_second": round(loaded.events as f64 / generate_seconds),
               "search_catch_up_seconds": round(catch_up_seconds)}),
    );
    say("search");
    let search = {
        let (http, token, base) = (http.clone(), admin_token.clone(), api.query.clone());
        load::closed(
            8,
            seconds,
            move |worker, n| {
                let (http, token, base) = (http.clone(), token.clone(), base.clone());
                async move {
                    let names = generate::first_names();
                    let q = names[(worker + n as usize) % names.len()];
                    let prefix = &q[..3.min(q.len())];
                    status_of(
                        http.get(format!(
                            "{base}/v1/tenants/{tenant_id}/users?q={prefix}&limit=20"
                        ))
                        .bearer_auth(&token)
                        .send()
                        .await,
                    )
                }
            },
            is(200),
        )
        .await
    };
    scenarios.insert(format!("search_users_{}", plan.search_users), json!(search));

    // Freshness is measured at rest: every projection first finishes the generated backlog.
    say("waiting for every projection to catch up");
    let control = connect(&args.database_url).await?;
    let waited = Instant::now();
    loop {
        let behind: i64 = control
            .query_one(
                "SELECT count(*) FROM projection_checkpoints
                  WHERE projection <> 'email-jobs'
                    AND (last_transaction_id, last_position) <
                        (SELECT transaction_id::text::bigint AS transaction_number, position FROM events
                          ORDER BY transaction_id DESC, position DESC LIMIT 1)",
                &[],
            )
            .await?
            .get(0);
        if behind == 0 {
            break;
        }
        if waited.elapsed() > Duration::from_secs(900) {
            bail!("the projections did not catch up with the generated events in 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scenarios.insert(
        "projections_catch_up".into(),
        json!({"seconds_after_search": round(waited.elapsed().as_secs_f64())}),
    );

    // Freshness at half the measured write rate: command answer → read model / index.
    let rate = (write_c64.per_second / 2.0).max(1.0);
    say(&format!("freshness at {rate:.0} writes/s"));
    let (fresh_writes, freshness) = writes::freshness(&api, &writers, rate, seconds).await;
    scenarios.insert("freshness_writes".into(), json!(fresh_writes));
    scenarios.insert("freshness_read_model".into(), json!(freshness));
    let search_rate = rate.min(20.0);
    say(&format!("search visibility at {search_rate:.0} writes/s"));
    let visible = writes::search_visible(
        &api,
        &writers,
        &admin_token,
        tenant_id,
        search_rate,
        seconds,
    )
    .await;
    scenarios.insert("search_visible".into(), json!(visible));

    // Raw appends at the write scenario's concurrencies (measured before the services
    // started, when pgbench could have its 64 connections).
    let raw_append: BTreeMap<String, f64> = match &args.raw_append_in {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => {
            let mut raw_append = BTreeMap::new();
            for clients in [1usize, 8] {
                say(&format!("pgbench raw append at {clients} clients"));
                let tps = baselines::raw_append(&args.database_url, clients, plan.seconds).await?;
                raw_append.insert(format!("c{clients}"), tps);
            }
            raw_append
        }
    };
    baselines.insert("raw_append_tps".into(), json!(raw_append));

    say("JetStream publish baseline");
    let sample: String = connect(&args.database_url)
        .await?
        .query_one(
            "SELECT jsonb_build_object('data', data, 'metadata', metadata)::text FROM events ORDER BY position DESC LIMIT 1",
            &[],
        )
        .await?
        .get(0);
    let publish =
        baselines::jetstream(&args.nats_url, plan.jetstream_messages, sample.into_bytes()).await?;
    baselines.insert("jetstream_publish_per_second".into(), json!(publish));

    // Replay over a scratch database of generated events.
    let (ordered_read, replay_users) =
        replay::measure(&args, &plan, &keys, &master_key, &password_hash, &say).await?;
    let (rows, read_rate, replay_rate) = (
        ordered_read.rows,
        ordered_read.rows_per_second,
        replay_users.events_per_second,
    );
    baselines.insert(
        "ordered_read".into(),
        json!({"rows": rows, "rows_per_second": read_rate}),
    );
    scenarios.insert("replay_users".into(), replay_users.json);

    say(&format!("importing {} users", plan.import_rows));
    let import = import::measure(&api, &writers, &args.database_url, plan.import_rows).await?;
    scenarios.insert(format!("import_{}", plan.import_rows), import.json.clone());
    baselines.insert(
        "import_insert_rows_per_second".into(),
        json!(load::round(import.baseline_rows_per_second)),
    );

    let rss_mb = report::peak_rss_of(&args.pids);
    let health_c64 = read_rates.get("health_c64").map_or(0.0, |s| s.per_second);
    let me_c64 = read_rates.get("me_c64").map_or(0.0, |s| s.per_second);
    let mut ratios = BTreeMap::new();
    ratios.insert(
        "write_ratio".into(),
        ratio(
            write_c64.per_second,
            raw_append.get("c64").copied().unwrap_or(0.0),
        ),
    );
    ratios.insert(
        "login_ratio".into(),
        ratio(logins.per_second, argon2.verifies_per_second),
    );
    ratios.insert("read_ratio".into(), ratio(me_c64, health_c64));
    ratios.insert("replay_ratio".into(), ratio(replay_rate, read_rate));
    ratios.insert(
        "import_ratio".into(),
        ratio(import.rows_per_second, import.baseline_rows_per_second),
    );
    let mut figures = BTreeMap::new();
    figures.insert("freshness_p99_ms".into(), freshness.p99_ms);
    figures.insert("search_visible_p99_ms".into(), visible.p99_ms);
    figures.insert("search_p99_ms".into(), search.p99_ms);
    figures.insert(
        "import_rows_per_second".into(),
        load::round(import.rows_per_second),
    );
    figures.insert(
        "patch_me_p99_ms_during_import".into(),
        import.patch_during.p99_ms,
    );
    figures.insert(
        format!("me_get_p99_ms_{}conn", plan.big_connections),
        read_rates.get("me_big").map_or(0.0, |s| s.p99_ms),
    );
    figures.insert(format!("me_get_p99_ms_{held_connections}conn"), held.p99_ms);
    let report = Report {
        started_at: started_at.to_rfc3339(),
        quick: args.quick,
        machine: json!({"cores": cores, "open_files_limit": open_files_limit()}),
        scenarios,
        baselines,
        ratios,
        figures,
        rss_mb,
    };
    if let Some(stream) = &args.stream
        && let Ok(client) = async_nats::connect(&args.nats_url).await
    {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
    report::write(&report, &args.out_dir, started_at)
}
