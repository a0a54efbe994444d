//! Building and running the command API. `main` and the tests both go through
//! [`Application::build`].

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use chrono::Duration;
use eventstore::EventStore;
use infra::auth::{HashingPool, PasswordHashing};
use infra::crypto::KeyRing;
use infra::tokens::{KeySet, Signer, Tokens};
use tracing_actix_web::TracingLogger;

use crate::app_state::AppState;
use crate::settings::Settings;
use api_common::Authenticator;
use api_common::error::render_problem;
use api_common::extract::{EventraRootSpan, echo_request_ids};

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Migrates the database, loads the keys and binds the listener (port 0 picks a free
    /// port, which [`Application::port`] reports).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        infra::migrate::migrate_database(&settings.database_url)
            .await
            .context("migrating the database")?;
        let pool = infra::db::pool_waiting(
            &settings.database_url,
            settings.database_pool_size,
            settings.database_pool_wait,
        )?;
        let keys = Arc::new(KeyRing::new(settings.load_master_key()?));
        infra::config::check_master_key(&pool, &keys).await?;
        let access_ttl = Duration::seconds(settings.access_token_ttl_seconds);
        let signer = Signer::register(
            pool.clone(),
            settings.load_signing_key()?,
            access_ttl,
            infra::tokens::HEARTBEAT,
        )
        .await?;
        let token_keys = KeySet::load(pool.clone()).await?;
        token_keys.watch(settings.database_url.expose().to_owned());
        let tokens = Tokens::issuing(
            signer,
            token_keys,
            access_ttl,
            Duration::seconds(settings.refresh_token_ttl_seconds),
        );
        let hashing = PasswordHashing::new(settings.password_params)?;
        let listener = TcpListener::bind(settings.listen_addr)
            .with_context(|| format!("binding {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let tokens = Arc::new(tokens);
        // Commands check the authentication state in Postgres on every request: what a
        // command decides must never rest on a session that just ended (ADR 0031).
        let authenticator = web::Data::new(Authenticator {
            pool: pool.clone(),
            tokens: Arc::clone(&tokens),
            sessions: api_common::sessions::SessionCache::disabled(),
        });
        let traffic = web::Data::new(
            api_common::traffic::Traffic::new(
                "command-api",
                settings.traffic.clone(),
                pool.clone(),
            )
            .await?,
        );
        let probe = api_common::operations::probe_data(api_common::operations::DatabaseProbe {
            service: "command-api",
            pool: pool.clone(),
        });
        let state = web::Data::new(AppState {
            store: EventStore::new(pool, keys),
            hashing: HashingPool::new(
                hashing,
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )?,
            tokens,
            settings: Arc::new(settings.clone()),
        });
        // What this instance keeps of a user another instance erases is forgotten at once.
        tokio::spawn(
            state
                .store
                .clone()
                .forget_erased(settings.database_url.expose().to_owned()),
        );
        // Forget idempotency keys after their time to live, every ten minutes.
        let purge_store = state.store.clone();
        let ttl = Duration::hours(settings.idempotency_key_ttl_hours.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tick.tick().await;
                match purge_store
                    .purge_idempotency_keys(chrono::Utc::now() - ttl)
                    .await
                {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "expired idempotency keys purged"),
                    Err(error) => tracing::warn!(%error, "purging idempotency keys failed"),
                }
            }
        });
        let max_body = settings.max_body_bytes;
        let metrics_access = web::Data::new(settings.traffic.metrics_access.clone());
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(api_common::traffic::traffic))
                .wrap(ErrorHandlers::new().default_handler(render_problem))
                .wrap(from_fn(echo_request_ids))
                .wrap(TracingLogger::<EventraRootSpan>::new())
                .app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(traffic.clone())
                .app_data(probe.clone())
                .app_data(metrics_access.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(crate::http::configure)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        tracing::info!(port, "command API listening");
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM stop it gracefully).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
