//! Building and running the query API; `main` and the tests both use [`Application::build`].

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use api_common::error::render_problem;
use api_common::extract::{EventraRootSpan, echo_request_ids};
use api_common::{ApiError, Authenticator};
use infra::tokens::{KeySet, Tokens};
use tracing_actix_web::TracingLogger;

use crate::settings::Settings;
use crate::state::AppState;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        infra::migrate::migrate_database(&settings.database_url)
            .await
            .context("migrating the database")?;
        let pool = infra::db::pool_waiting(
            &settings.database_url,
            settings.database_pool_size,
            settings.database_pool_wait,
        )?;
        // Only verification is needed here, with the keys the command API registered.
        let keys = KeySet::load(pool.clone()).await?;
        keys.watch(settings.database_url.expose().to_owned());
        let tokens = Arc::new(Tokens::verifying(keys));
        let metrics_access = web::Data::new(settings.traffic.metrics_access.clone());
        let listener = TcpListener::bind(settings.listen_addr)
            .with_context(|| format!("binding {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let authenticator = web::Data::new(Authenticator {
            pool: pool.clone(),
            tokens,
            sessions: api_common::sessions::SessionCache::start(
                settings.database_url.expose().to_owned(),
                settings.auth_cache_ttl,
            ),
        });
        let traffic = web::Data::new(
            api_common::traffic::Traffic::new("query-api", settings.traffic.clone(), pool.clone())
                .await?,
        );
        let positions =
            crate::positions::Positions::start(pool.clone(), settings.max_waits_per_tenant);
        let state = web::Data::new(AppState {
            pool,
            positions,
            search: crate::search::SearchService::new(settings.search_dir.clone()),
            settings: Arc::new(settings),
        });
        let probe =
            api_common::operations::probe_data(crate::http::operations::QueryProbe(state.clone()));
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
                .app_data(web::QueryConfig::default().error_handler(|error, _| {
                    let mut detail = format!("the query is not valid: {error}");
                    detail.truncate(300);
                    ApiError::Validation(detail).into()
                }))
                .configure(crate::http::configure)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        tracing::info!(port, "query API listening");
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
