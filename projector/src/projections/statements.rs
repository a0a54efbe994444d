//! Statements of the Postgres read models: each carries its own copy of its parameters, and
//! a page of them is sent pipelined (one round trip).

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

use crate::error::HandlerError;

pub type Param = Box<dyn ToSql + Sync + Send>;

/// One statement of a read model with its own copy of its parameters.
pub struct Statement {
    sql: String,
    params: Vec<Param>,
}

impl Statement {
    /// A statement without parameters (a savepoint).
    pub fn bare(sql: &str) -> Self {
        Statement {
            sql: sql.to_owned(),
            params: Vec::new(),
        }
    }
}

/// The parameters of a statement, each copied (`to_owned`) out of the event.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$(Box::new(($value).to_owned()) as Param),*]
    };
}

pub struct Writer<'a> {
    pub(crate) suffix: &'a str,
    pub(crate) out: &'a mut Vec<Statement>,
}

impl Writer<'_> {
    /// Adds `sql` with `{t}` replaced by the target table's name (live or staging).
    pub fn run(&mut self, sql: &str, table: &str, params: Vec<Param>) {
        let sql = sql.replace("{t}", &format!("{table}{}", self.suffix));
        self.out.push(Statement { sql, params });
    }
}

/// Runs statements in order on one connection, pipelined: every statement is sent before
/// the first answer is awaited (tokio-postgres sends requests in the order their futures
/// are first polled), so a page of events costs one round trip instead of one per
/// statement. Postgres executes them in that order; after a failure the rest of the
/// transaction fails too, and the first error is returned.
pub async fn execute_pipelined(
    client: &Object,
    statements: &[Statement],
) -> Result<(), HandlerError> {
    let mut prepared = Vec::with_capacity(statements.len());
    for statement in statements {
        prepared.push(
            client
                .prepare_cached(&statement.sql)
                .await
                .map_err(HandlerError::classify)?,
        );
    }
    let pending = statements
        .iter()
        .zip(&prepared)
        .map(|(statement, prepared)| {
            Box::pin(client.execute_raw(
                prepared,
                statement.params.iter().map(|p| &**p as &(dyn ToSql + Sync)),
            ))
        })
        .collect();
    let answers = infra::db::pipelined(pending).await;
    let mut first_error = None;
    for result in answers {
        if let (Err(error), None) = (result, &first_error) {
            first_error = Some(error);
        }
    }
    match first_error {
        Some(error) => Err(HandlerError::classify(error)),
        None => Ok(()),
    }
}
