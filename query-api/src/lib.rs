//! Eventra's query API: profiles, users, activity and audit logs from the read models,
//! tenant-scoped, paginated by cursor, with read-your-writes.

pub mod consistency;
pub mod http;
pub mod pagination;
pub mod positions;
pub mod search;
pub mod settings;
pub mod startup;
pub mod state;

pub use settings::Settings;
pub use startup::Application;
