//! Eventra's asynchronous side: the ordered relay from the event store to NATS JetStream,
//! the projection runtime with its read models, the email queue and its worker, the
//! scheduler that fires durable timers, and the operator commands.

pub mod app;
pub mod batch;
pub mod checkpoint;
pub mod dead_letters;
pub mod email;
pub mod error;
pub mod http;
pub mod imports;
pub mod page;
pub mod projections;
pub mod relay;
pub mod replay;
pub mod resets;
pub mod runtime;
pub mod scheduler;
pub mod settings;
pub mod stream;
pub mod webhooks;
pub mod work;
