//! The read side's shared vocabulary: what the projector writes and the query API (and the
//! operator CLI) read. The search index's schema, its generations and its queries; the
//! projections by name with the tables they own and where they stand.
//!
//! Both sides depend on this crate and not on each other: the query API links neither NATS
//! nor the mailer to reach the index.

pub mod activity;
pub mod projections;
pub mod search;

pub use projections::{ProjectionName, RELAY_NAME};
