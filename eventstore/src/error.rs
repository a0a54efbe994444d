//! What the event store can answer instead of success.

use infra::crypto::CryptoError;
use thiserror::Error;
use uuid::Uuid;

use crate::upcast::UpcastError;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer appended to the stream since it was loaded: decide again.
    #[error("the stream {aggregate_type} {aggregate_id} changed concurrently")]
    Conflict {
        aggregate_type: String,
        aggregate_id: Uuid,
    },
    /// A unique value (such as an email within a tenant) is already reserved.
    #[error("the {kind} is already taken")]
    Duplicate { kind: String },
    /// The subject's data key was destroyed; nothing personal can be written for them.
    #[error("the data subject has been erased")]
    SubjectErased,
    #[error("a stored event is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The group commit this append was part of failed as a whole (the connection or the
    /// commit); whether it committed is unknown only if the commit itself was cut off.
    #[error("the group commit failed: {0}")]
    Batch(String),
}

impl StoreError {
    /// A failure of the database itself (as opposed to a rule or a conflict): a client may
    /// retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Batch(_) => true,
            StoreError::Database(error) => {
                error.is_closed()
                    || std::error::Error::source(error)
                        .is_some_and(|source| source.is::<std::io::Error>())
                    || error.code().is_some_and(|code| {
                        let class = &code.code()[..2];
                        // Connection exceptions, resources, operator intervention.
                        matches!(class, "08" | "53" | "57")
                    })
            }
            _ => false,
        }
    }
}

impl From<infra::db::BeginError> for StoreError {
    fn from(error: infra::db::BeginError) -> Self {
        match error {
            infra::db::BeginError::Pool(e) => StoreError::Pool(e),
            infra::db::BeginError::Database(e) => StoreError::Database(e),
        }
    }
}
