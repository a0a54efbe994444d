//! Integration tests against the real PostgreSQL: one fresh database per test.

mod admin;
mod architecture;
mod cli;
mod concurrency;
mod deploy;
mod emails;
mod erasure;
mod faults;
mod hostile_input;
mod idempotency;
mod imports;
mod invitations;
mod isolation;
mod keys;
mod lifecycle;
mod limits;
mod links;
mod members;
mod openapi;
mod projector;
mod queries;
mod schema;
mod sessions;
mod settings;
mod signup;
mod teams;
