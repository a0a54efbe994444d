//! The replay scenario: users with profile updates generated into a scratch database
//! through the store, the ordered-read baseline over them, and `projector replay users`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use eventstore::EventStore;
use infra::crypto::KeyRing;
use serde_json::{Value, json};

use crate::load::round;
use crate::plan::{Args, Plan};
use crate::{baselines, connect, generate};

/// The raw ordered read of the scratch database's events.
pub struct OrderedRead {
    pub rows: u64,
    pub rows_per_second: f64,
}

/// The replay's rate, with the scenario's figures.
pub struct Replayed {
    pub events_per_second: f64,
    pub json: Value,
}

pub async fn measure(
    args: &Args,
    plan: &Plan,
    keys: &Arc<KeyRing>,
    master_key: &str,
    password_hash: &str,
    say: &impl Fn(&str),
) -> anyhow::Result<(OrderedRead, Replayed)> {
    infra::migrate::migrate_database(&args.replay_database_url).await?;
    let replay_pool = infra::db::pool(&args.replay_database_url, 8)?;
    let replay_store = EventStore::new(replay_pool, Arc::clone(keys));
    let replay_tenant = generate::tenant(&replay_store, "Replay").await?;
    say(&format!(
        "generating {} users with {} profile updates each for the replay",
        plan.replay_users, plan.replay_updates
    ));
    let generated_at = Instant::now();
    let replay_loaded = generate::users(
        &replay_store,
        replay_tenant,
        0,
        plan.replay_users,
        plan.replay_updates,
        password_hash,
        4,
    )
    .await?;
    let replay_generate_seconds = generated_at.elapsed().as_secs_f64();
    // The live projection of this scratch database "has" every event, so that the replay
    // rebuilds all of them (no projector runs against it).
    connect(&args.replay_database_url)
        .await?
        .batch_execute(
            "INSERT INTO projection_checkpoints (projection, last_transaction_id, last_position)
             SELECT 'users', transaction_id::text::bigint AS transaction_number, position FROM events
              ORDER BY transaction_id DESC, position DESC LIMIT 1
             ON CONFLICT (projection) DO UPDATE
               SET last_transaction_id = excluded.last_transaction_id, last_position = excluded.last_position",
        )
        .await?;
    say("raw ordered read baseline");
    let (rows, read_rate) = baselines::ordered_read(&args.replay_database_url).await?;
    say("projector replay users");
    let replay_started = Instant::now();
    let output = {
        let (projector, url, key) = (
            args.projector.clone(),
            args.replay_database_url.clone(),
            master_key.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(projector)
                .args(["replay", "users"])
                .env("DATABASE_URL", url)
                .env("EVENTRA_MASTER_KEY", key)
                .env("RUST_LOG", "warn")
                .output()
        })
        .await?
        .context("running projector replay")?
    };
    let replay_seconds = replay_started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "projector replay failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let replay_rate = rows as f64 / replay_seconds;
    let json = json!({"events": rows, "generated_events": replay_loaded.events,
           "generate_seconds": round(replay_generate_seconds),
           "seconds": round(replay_seconds), "events_per_second": round(replay_rate),
           "output": String::from_utf8_lossy(&output.stdout).trim()});
    Ok((
        OrderedRead {
            rows,
            rows_per_second: read_rate,
        },
        Replayed {
            events_per_second: replay_rate,
            json,
        },
    ))
}
