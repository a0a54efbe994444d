//! Eventra's asynchronous side: the ordered relay from the event store to NATS JetStream,
//! the projection runtime with its read models, and the operator commands.

pub mod app;
pub mod dead_letters;
pub mod email_worker;
pub mod emails;
pub mod http;
pub mod mail_jobs;
pub mod mailer;
pub mod projections;
pub mod relay;
pub mod replay;
pub mod runtime;
pub mod search;
pub mod settings;
pub mod stream;
pub mod templates;
pub mod users;
