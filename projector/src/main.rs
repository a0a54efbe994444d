use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use infra::crypto::KeyRing;
use projector::dead_letters::{self, RetryOutcome};
use projector::email::cli::{self, Selection};
use projector::projections::Projection;
use projector::settings::Settings;
use uuid::Uuid;

/// Eventra's projector: relays events to JetStream, keeps the read models, and lets
/// operators inspect and rebuild them.
#[derive(Parser)]
#[command(name = "projector", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A projection by its name (`projector status` lists them).
fn projection(name: &str) -> Result<Projection, String> {
    Projection::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Projection::EVERY.iter().map(Projection::name).collect();
        format!("no projection {name:?}; one of {}", names.join(", "))
    })
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay and the projections until Ctrl-C or SIGTERM.
    Run {
        /// Only these projections (default: all).
        #[arg(long, value_delimiter = ',', value_parser = projection)]
        projections: Vec<Projection>,
    },
    /// Each projection's position, lag and dead letters, and the relay's.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a projection from the event store beside the live one, then switch.
    Replay {
        #[arg(value_parser = projection)]
        projection: Projection,
        /// Only this tenant's rows.
        #[arg(long)]
        tenant: Option<Uuid>,
    },
    /// Inspect, retry or discard messages a projection could not apply.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Inspect the email queue; retry or discard dead jobs.
    EmailJobs {
        #[command(subcommand)]
        command: EmailJobCommand,
    },
    /// Inspect webhook deliveries; send dead ones again.
    WebhookDeliveries {
        #[command(subcommand)]
        command: WebhookDeliveryCommand,
    },
    /// Inspect bulk imports; cancel one.
    Imports {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// The keys access tokens are signed with; revoke one that may have leaked.
    TokenKeys {
        #[command(subcommand)]
        command: TokenKeyCommand,
    },
    /// Apply the database migrations and exit.
    Migrate,
}

#[derive(Subcommand)]
enum TokenKeyCommand {
    /// One JSON line per key ever registered, newest first.
    List,
    /// Stop trusting a key at once, on every instance: every token it signed is refused
    /// from now on, and an instance still configured with it refuses to sign.
    Revoke { kid: String },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// One JSON line per import, newest first.
    List {
        /// queued, running, completed, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tenant: Option<Uuid>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Stop an import after the batch being written (`import.cancelled`, no actor).
    Cancel { id: Uuid },
}

#[derive(Subcommand)]
enum EmailJobCommand {
    /// One JSON line per job, oldest first.
    List {
        /// pending, sending, sent, dead, suppressed or discarded.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tenant: Option<Uuid>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue dead jobs again, with a fresh attempt budget.
    Retry {
        ids: Vec<Uuid>,
        /// Every dead job.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
    },
    /// Give up on dead (or still pending) jobs for good.
    Discard {
        ids: Vec<Uuid>,
        /// Every dead job.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
    },
}

#[derive(Subcommand)]
enum WebhookDeliveryCommand {
    /// One JSON line per delivery, oldest first.
    List {
        /// pending, sending, delivered, dead or discarded.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tenant: Option<Uuid>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Send dead deliveries again, with a fresh set of attempts and the same webhook-id.
    Retry {
        ids: Vec<Uuid>,
        /// Every dead delivery.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    List {
        #[arg(long, value_parser = projection)]
        projection: Option<Projection>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Re-drive one: rebuild the projection's rows of its tenant from the event store.
    Retry {
        id: i64,
    },
    Discard {
        id: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    infra::telemetry::init(settings.log_json);
    match cli.command {
        Command::Run { projections } => {
            let projections = if projections.is_empty() {
                Projection::EVERY.to_vec()
            } else {
                projections
            };
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                let _ = stop.send(true);
            });
            let listener = std::net::TcpListener::bind(settings.http_addr)
                .with_context(|| format!("binding PROJECTOR_ADDR {}", settings.http_addr))?;
            projector::app::run(settings, projections, shutdown, Some(listener)).await?;
        }
        Command::Status { json } => {
            let pool = infra::db::pool(&settings.database_url, 2)?;
            let client = pool.get().await.context("connecting to Postgres")?;
            let status = read_models::projections::status(&client).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "event store head position {} ({} events)",
                    status.head_position, status.events
                );
                println!(
                    "{:<12} {:>10} {:>10} {:>10} {:>12} {:>8}",
                    "name", "position", "lag", "lag (s)", "dead letters", "applied"
                );
                for entry in std::iter::once(&status.relay).chain(status.projections.iter()) {
                    println!(
                        "{:<12} {:>10} {:>10} {:>10.3} {:>12} {:>8}",
                        entry.name,
                        entry.position,
                        entry.lag_events,
                        entry.lag_seconds,
                        entry.dead_letters,
                        entry.events_applied
                    );
                }
                println!(
                    "email jobs: {}",
                    status
                        .email_jobs
                        .iter()
                        .map(|(state, count)| format!("{count} {state}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                println!("(email-jobs is never replayed: a replay would send the emails again)");
            }
        }
        Command::Replay { projection, tenant } => {
            let pool = infra::db::pool(&settings.database_url, 4)?;
            let keys = KeyRing::new(settings.load_master_key()?);
            let report = projector::replay::replay(&pool, &keys, projection, tenant, true).await?;
            let seconds = report.elapsed.as_secs_f64();
            println!(
                "replayed {} ({}) : {} events in {:.2}s ({:.0} events/s), now at position {}",
                report.projection.name(),
                report
                    .tenant_id
                    .map_or("all tenants".to_owned(), |t| format!("tenant {t}")),
                report.events,
                seconds,
                report.events as f64 / seconds.max(f64::EPSILON),
                report.checkpoint.position
            );
        }
        Command::DeadLetters { command } => {
            let pool = infra::db::pool(&settings.database_url, 4)?;
            match command {
                DeadLetterCommand::List { projection, limit } => {
                    for letter in dead_letters::list(&pool, projection, limit).await? {
                        println!("{}", serde_json::to_string(&letter)?);
                    }
                }
                DeadLetterCommand::Retry { id } => {
                    let keys = Arc::new(KeyRing::new(settings.load_master_key()?));
                    match dead_letters::retry(&pool, &keys, id).await? {
                        RetryOutcome::Resolved => println!("dead letter {id} applied and removed"),
                        RetryOutcome::StillFailing => {
                            println!("dead letter {id} failed again; see the new dead letter");
                            std::process::exit(1);
                        }
                    }
                }
                DeadLetterCommand::Discard { id } => {
                    dead_letters::discard(&pool, id).await?;
                    println!("dead letter {id} discarded");
                }
            }
        }
        Command::Imports { command } => {
            let pool = infra::db::pool(&settings.database_url, 2)?;
            match command {
                ImportCommand::List {
                    status,
                    tenant,
                    limit,
                } => {
                    for import in
                        projector::imports::list(&pool, tenant, status.as_deref(), limit).await?
                    {
                        println!("{import}");
                    }
                }
                ImportCommand::Cancel { id } => {
                    let keys = std::sync::Arc::new(infra::crypto::KeyRing::new(
                        settings.load_master_key()?,
                    ));
                    let store = eventstore::EventStore::new(pool, keys);
                    projector::imports::cancel(&store, id).await?;
                    println!("import {id} cancelled");
                }
            }
        }
        Command::EmailJobs { command } => {
            let pool = infra::db::pool(&settings.database_url, 2)?;
            let selection = |ids: Vec<Uuid>, all_dead: bool| {
                if all_dead {
                    Ok(Selection::AllDead)
                } else if ids.is_empty() {
                    anyhow::bail!("name the jobs, or pass --all-dead")
                } else {
                    Ok(Selection::Jobs(ids))
                }
            };
            match command {
                EmailJobCommand::List {
                    status,
                    tenant,
                    limit,
                } => {
                    let status = status.as_deref().map(cli::parse_status).transpose()?;
                    for job in cli::list(&pool, status, tenant, limit).await? {
                        println!("{}", serde_json::to_string(&job)?);
                    }
                }
                EmailJobCommand::Retry { ids, all_dead } => {
                    let count = cli::retry(&pool, &selection(ids, all_dead)?).await?;
                    println!("{count} job(s) queued again");
                }
                EmailJobCommand::Discard { ids, all_dead } => {
                    let count = cli::discard(&pool, &selection(ids, all_dead)?).await?;
                    println!("{count} job(s) discarded");
                }
            }
        }
        Command::WebhookDeliveries { command } => {
            let pool = infra::db::pool(&settings.database_url, 2)?;
            match command {
                WebhookDeliveryCommand::List {
                    status,
                    tenant,
                    limit,
                } => {
                    let status = status
                        .as_deref()
                        .map(projector::webhooks::cli::parse_status)
                        .transpose()?;
                    for delivery in
                        projector::webhooks::cli::list(&pool, status, tenant, limit).await?
                    {
                        println!("{}", serde_json::to_string(&delivery)?);
                    }
                }
                WebhookDeliveryCommand::Retry { ids, all_dead } => {
                    if ids.is_empty() && !all_dead {
                        anyhow::bail!("name the deliveries, or pass --all-dead");
                    }
                    let count = projector::webhooks::cli::retry(&pool, &ids, all_dead).await?;
                    println!("{count} delivery(ies) queued again");
                }
            }
        }
        Command::TokenKeys { command } => {
            let pool = infra::db::pool(&settings.database_url, 2)?;
            match command {
                TokenKeyCommand::List => {
                    for key in infra::tokens::list(&pool).await? {
                        println!("{}", serde_json::to_string(&key)?);
                    }
                }
                TokenKeyCommand::Revoke { kid } => {
                    if infra::tokens::revoke(&pool, &kid).await? {
                        println!("key {kid} revoked; its tokens are refused from now on");
                    } else {
                        anyhow::bail!("no key {kid} that is not already revoked");
                    }
                }
            }
        }
        Command::Migrate => {
            let applied = infra::migrate::migrate_database(&settings.database_url).await?;
            println!("migrated; applied {applied:?}");
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
