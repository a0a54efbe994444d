//! HTTP plumbing shared by the command and query APIs: one problem+json error type, the
//! authenticated caller, request ids in logs and answers, strict JSON bodies; and the
//! `/health`, `/ready` and `/metrics` that all three services answer (`operations`).

pub mod client_address;
pub mod docs;
pub mod error;
pub mod extract;
pub mod operations;
pub mod sessions;
pub mod traffic;

pub use error::ApiError;
pub use extract::{Authenticator, Caller};
