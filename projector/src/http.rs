//! The projector's small HTTP port: `/health`, `/ready` and `/metrics` (Prometheus), as
//! every service answers them (`api_common::operations`), and the lag gauges.

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use api_common::operations::{Checks, Probe};
use async_nats::connection::State;
use deadpool_postgres::Pool;
use serde_json::Map;

use crate::projections::Projection;

/// The projector depends on PostgreSQL, NATS and, when it sends email, the SMTP server.
struct ProjectorProbe {
    pool: Pool,
    nats: async_nats::Client,
    /// The mailer, when this projector sends email.
    mailer: Option<Arc<crate::email::transport::Mailer>>,
}

impl Probe for ProjectorProbe {
    fn checks(&self) -> Pin<Box<dyn Future<Output = Checks> + '_>> {
        Box::pin(async move {
            let mut checks = Checks::new();
            checks.postgres(&self.pool).await;
            // A round trip to the server (a flush waits for its PONG).
            checks
                .check("nats", async {
                    if self.nats.connection_state() != State::Connected {
                        return Err("not connected".to_owned());
                    }
                    self.nats.flush().await.map_err(|e| e.to_string())?;
                    Ok(Map::new())
                })
                .await;
            if let Some(mailer) = &self.mailer {
                checks
                    .check("smtp", async { mailer.probe().await.map(|()| Map::new()) })
                    .await
                    .note("smtp", "target", mailer.describe());
            }
            checks
        })
    }

    fn before_metrics(&self) {
        infra::metrics::record_pool("projector", &self.pool);
    }
}

pub fn serve(
    listener: TcpListener,
    pool: Pool,
    nats: async_nats::Client,
    mailer: Option<Arc<crate::email::transport::Mailer>>,
    metrics_access: api_common::operations::MetricsAccess,
) -> std::io::Result<actix_web::dev::Server> {
    let probe = api_common::operations::probe_data(ProjectorProbe { pool, nats, mailer });
    let metrics_access = actix_web::web::Data::new(metrics_access);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(probe.clone())
            .app_data(metrics_access.clone())
            .configure(api_common::operations::configure)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// Refreshes the lag gauges from the database every few seconds.
pub async fn report_lag(pool: Pool, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if let Ok(client) = pool.get().await
            && let Ok(status) = read_models::projections::status(&client).await
        {
            metrics::gauge!("eventra_event_store_head_position").set(status.head_position as f64);
            metrics::gauge!("eventra_relay_lag_events").set(status.relay.lag_events as f64);
            metrics::gauge!("eventra_relay_lag_seconds").set(status.relay.lag_seconds);
            for entry in &status.projections {
                let name = Projection::from_name(&entry.name).map_or("unknown", |p| p.name());
                metrics::gauge!("eventra_projection_lag_events", "projection" => name)
                    .set(entry.lag_events as f64);
                metrics::gauge!("eventra_projection_lag_seconds", "projection" => name)
                    .set(entry.lag_seconds);
                metrics::gauge!("eventra_projection_dead_letters", "projection" => name)
                    .set(entry.dead_letters as f64);
            }
            for (status, count) in &status.email_jobs {
                let status = infra::email_jobs::STATUSES
                    .into_iter()
                    .find(|s| s == status)
                    .unwrap_or("unknown");
                metrics::gauge!("eventra_email_jobs", "status" => status).set(*count as f64);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
