//! Adapters shared by Eventra's binaries, with no knowledge of streams: the database pool
//! and migrations, personal-data encryption keys, passwords and tokens, the authentication
//! state both APIs check on every request, the email queue's rows, configuration, metrics
//! and logging. The event store is its own crate (`eventstore`).

pub mod auth;
pub mod auth_state;
pub mod config;
pub mod crypto;
pub mod db;
pub mod email_jobs;
pub mod imports;
pub mod metrics;
pub mod migrate;
pub mod net;
pub mod password_resets;
pub mod secret;
pub mod telemetry;
pub mod tokens;
pub mod webhooks;

pub use secret::{ConnectionUrl, Secret};
