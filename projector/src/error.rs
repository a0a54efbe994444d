//! Why an event could not be applied: the one error every projection handler answers.

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event itself cannot be applied (undecodable, inconsistent): dead-letter it.
    #[error("{0}")]
    Poison(String),
    /// The database failed: try again later, the event is fine.
    #[error("database error: {0}")]
    Transient(#[from] tokio_postgres::Error),
}

impl HandlerError {
    /// Database errors about the data itself (SQLSTATE classes 22 and 23) will fail the same
    /// way every time: they are poison, not transient.
    pub fn classify(error: tokio_postgres::Error) -> Self {
        match error.code().map(|c| &c.code()[..2]) {
            Some("22" | "23") => HandlerError::Poison(match error.as_db_error() {
                // The server's own words (which constraint, which value) tell an operator
                // what to fix; the bare error only says "db error".
                Some(db) => format!("{} ({})", db.message(), db.code().code()),
                None => error.to_string(),
            }),
            _ => HandlerError::Transient(error),
        }
    }
}
