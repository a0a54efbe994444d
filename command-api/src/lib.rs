//! Eventra's command API: HTTP commands decided against aggregates and appended to the
//! event store in one transaction each.

pub mod commands;
pub mod operator;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;

pub use settings::Settings;
pub use startup::Application;
