//! Adapters shared by Eventra's binaries: the database pool and migrations, the event
//! store with personal-data encryption, and authentication (passwords, tokens, and the
//! authentication state both APIs check on every request).

pub mod auth;
pub mod auth_state;
pub mod config;
pub mod crypto;
pub mod db;
pub mod email_jobs;
pub mod envelope;
pub mod group_commit;
pub mod metrics;
pub mod migrate;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod upcast;

pub use secret::Secret;
