//! `projector run`: the relay and every projection, until shut down.

use std::sync::Arc;

use anyhow::Context as _;
use infra::crypto::KeyRing;
use tokio::sync::watch;

use crate::projections::Projection;
use crate::relay::Relay;
use crate::runtime::Runner;
use crate::settings::Settings;

/// Runs the relay and the given projections until `shutdown` turns true, then lets each
/// finish the batch in hand. With a `listener`, it also serves `/health`, `/ready` and
/// `/metrics` on it.
pub async fn run(
    settings: Settings,
    projections: Vec<Projection>,
    shutdown: watch::Receiver<bool>,
    listener: Option<std::net::TcpListener>,
) -> anyhow::Result<()> {
    let run_search = projections.contains(&Projection::Search);
    let run_email = projections.contains(&Projection::EmailJobs);
    let run_webhooks = projections.contains(&Projection::WebhookDeliveries);
    let projections: Vec<Projection> = projections
        .into_iter()
        .filter(|p| *p != Projection::Search)
        .collect();
    let _ = infra::metrics::recorder();
    infra::migrate::migrate_database(&settings.database_url)
        .await
        .context("migrating the database")?;
    let pool = infra::db::pool(&settings.database_url, settings.database_pool_size)?;
    let keys = Arc::new(KeyRing::new(settings.load_master_key()?));
    infra::config::check_master_key(&pool, &keys).await?;
    let js = crate::stream::connect(&settings.nats_url).await?;
    let mailer = if run_email && settings.email_worker.workers > 0 {
        Some(Arc::new(settings.mailer()?))
    } else {
        None
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = listener {
        let server = crate::http::serve(
            listener,
            pool.clone(),
            js.client(),
            mailer.clone(),
            settings.metrics_access.clone(),
        )?;
        let handle = server.handle();
        let mut server_shutdown = shutdown.clone();
        // In the task set like everything else: a caller that drops this future (a test
        // killing the projector in-process) ends the server with it, and its connections.
        tasks.spawn(async move {
            if let Err(error) = server.await {
                tracing::warn!(%error, "the projector's HTTP server stopped");
            }
        });
        tasks.spawn(async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
            handle.stop(true).await;
        });
    }
    tasks.spawn(crate::http::report_lag(pool.clone(), shutdown.clone()));
    if run_search {
        let search = crate::projections::search::SearchProjection {
            pool: pool.clone(),
            keys: Arc::clone(&keys),
            dir: settings.search_dir.clone(),
        };
        let search_shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = search.run(search_shutdown).await {
                tracing::error!(
                    error = format!("{error:#}"),
                    "the search projection stopped"
                );
            }
        });
    }
    if let Some(mailer) = mailer {
        // Mail files are kept for their retention only.
        let (files, retention, mut stop) = (
            Arc::clone(&mailer),
            settings.mail_file_retention,
            shutdown.clone(),
        );
        tasks.spawn(async move {
            loop {
                match files.forget_old_files(retention).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "old mail files deleted"),
                    Err(error) => tracing::warn!(%error, "deleting old mail files failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        });
        let worker = Arc::new(crate::email::worker::EmailWorker {
            pool: pool.clone(),
            mailer,
            settings: settings.email_worker.clone(),
            keys: Arc::clone(&keys),
        });
        tasks.spawn(worker.run(shutdown.clone()));
    }
    if run_webhooks && settings.webhooks.workers > 0 {
        let worker = Arc::new(crate::webhooks::worker::WebhookWorker {
            pool: pool.clone(),
            keys: Arc::clone(&keys),
            settings: settings.webhooks.clone(),
        });
        tasks.spawn(worker.run(shutdown.clone()));
    }
    // The scheduler keeps the user states it loads: it forgets those erased elsewhere.
    let scheduler_store = eventstore::EventStore::new(pool.clone(), Arc::clone(&keys));
    tasks.spawn({
        let (store, url, mut stop) = (
            scheduler_store.clone(),
            settings.database_url.expose().to_owned(),
            shutdown.clone(),
        );
        async move {
            tokio::select! {
                () = store.forget_erased(url) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
        }
    });
    let scheduler = crate::scheduler::Scheduler {
        store: scheduler_store,
        poll_interval: settings.timer_poll_interval,
        batch: 100,
        lease: settings.timer_lease,
        password_reset_ttl: settings.password_reset_ttl,
    };
    tasks.spawn(scheduler.run(shutdown.clone()));
    for index in 0..settings.import_workers {
        let worker = crate::imports::ImportWorker {
            store: eventstore::EventStore::new(pool.clone(), Arc::clone(&keys)),
            batch: settings.import_batch_rows,
            lease: settings.import_lease,
            poll_interval: settings.import_poll_interval,
            max_failures: settings.import_max_failures,
            name: format!(
                "{}-{index}-{}",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ),
        };
        tasks.spawn(worker.run(shutdown.clone()));
    }
    let relay = Relay {
        database_url: settings.database_url.expose().to_owned(),
        keys: Arc::clone(&keys),
        js: js.clone(),
        stream: settings.stream.clone(),
        poll_interval: settings.relay_poll_interval,
    };
    let relay_shutdown = shutdown.clone();
    tasks.spawn(async move { relay.run(relay_shutdown).await });
    // Every projection but the search index, from one consumer, in one transaction per
    // batch (ADR 32).
    if !projections.is_empty() {
        let runner = Runner::new(
            projections,
            pool.clone(),
            Arc::clone(&keys),
            js.clone(),
            settings.stream.clone(),
            settings.batch_size,
            settings.email_policy,
        );
        let runner_shutdown = shutdown.clone();
        tasks.spawn(async move { runner.run(runner_shutdown).await });
    }
    tracing::info!("projector running");
    while let Some(result) = tasks.join_next().await {
        result.context("a projector task failed")?;
    }
    Ok(())
}
