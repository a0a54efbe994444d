//! Eventra's command API: HTTP commands decided against aggregates and appended to the
//! event store.
//!
//! `http` parses requests by resource and builds commands; `commands` holds one file per
//! command; `pipeline` runs any of them (load → decide → append, idempotency, re-decisions,
//! grouping); `operator` runs the operator commands through the same pipeline.

pub mod app_state;
pub mod commands;
pub mod http;
pub mod import_file;
pub mod operator;
pub mod pipeline;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
