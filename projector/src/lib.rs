//! Eventra's asynchronous side: the ordered relay from the event store to NATS JetStream,
//! the projection runtime with its read models, and the operator commands.

pub mod app;
pub mod dead_letters;
pub mod http;
pub mod projections;
pub mod relay;
pub mod replay;
pub mod runtime;
pub mod search;
pub mod settings;
pub mod status;
pub mod stream;
