//! The projector's small HTTP port: `/health`, `/ready` and `/metrics` (Prometheus).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use async_nats::connection::State;
use deadpool_postgres::Pool;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::projections::Projection;

/// The process-wide Prometheus recorder (see `infra::metrics`).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    infra::metrics::recorder()
}

struct Probe {
    pool: Pool,
    nats: async_nats::Client,
    /// The mailer, when this projector sends email.
    mailer: Option<Arc<crate::email::transport::Mailer>>,
}

pub fn serve(
    listener: TcpListener,
    pool: Pool,
    nats: async_nats::Client,
    mailer: Option<Arc<crate::email::transport::Mailer>>,
) -> std::io::Result<actix_web::dev::Server> {
    let probe = web::Data::new(Probe { pool, nats, mailer });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(probe.clone())
            .route(
                "/health",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
            )
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

async fn ready(probe: web::Data<Probe>) -> HttpResponse {
    let started = Instant::now();
    let postgres = tokio::time::timeout(Duration::from_secs(2), async {
        let client = probe.pool.get().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    })
    .await
    .unwrap_or_else(|_| Err("timed out after 2s".into()));
    let postgres_ms = started.elapsed().as_secs_f64() * 1000.0;
    // A round trip to the server (a flush waits for its PONG).
    let started = Instant::now();
    let nats_up = probe.nats.connection_state() == State::Connected
        && matches!(
            tokio::time::timeout(Duration::from_secs(2), probe.nats.flush()).await,
            Ok(Ok(()))
        );
    let nats_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut checks = json!({
        "postgres": match &postgres {
            Ok(()) => json!({"status": "up", "latency_ms": postgres_ms}),
            Err(error) => json!({"status": "down", "latency_ms": postgres_ms, "error": error}),
        },
        "nats": {"status": if nats_up { "up" } else { "down" }, "latency_ms": nats_ms},
    });
    let mut mail_up = true;
    if let Some(mailer) = &probe.mailer {
        let started = Instant::now();
        let probed = tokio::time::timeout(Duration::from_secs(2), mailer.probe())
            .await
            .unwrap_or_else(|_| Err("timed out after 2s".into()));
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        mail_up = probed.is_ok();
        checks["smtp"] = match probed {
            Ok(()) => {
                json!({"status": "up", "latency_ms": latency_ms, "target": mailer.describe()})
            }
            Err(error) => {
                json!({"status": "down", "latency_ms": latency_ms, "target": mailer.describe(), "error": error})
            }
        };
    }
    if postgres.is_ok() && nats_up && mail_up {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "checks": checks}))
    }
}

async fn metrics() -> HttpResponse {
    match prometheus() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::ServiceUnavailable().body("metrics recorder unavailable"),
    }
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
