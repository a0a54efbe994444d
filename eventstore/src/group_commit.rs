//! Group commit: the appends of many concurrent commands in one transaction.
//!
//! A command that only appends to streams it loaded (expected versions, no reservation, no
//! lock, no idempotency record) hands its rows to the process's writer task and waits. The
//! writer takes everything waiting (up to [`MAX_BATCH`]), inserts each command's events
//! under its own savepoint — every statement of the batch pipelined, one round trip — then
//! updates the authentication state and commits once: one transaction and one WAL flush for
//! the batch. A command whose stream moved on (a unique violation on its sequence) or whose
//! insert failed otherwise is rolled back to its savepoint alone and answered with that
//! failure; the others commit. A failure of the transaction itself (the connection, the
//! commit) answers every command of the batch with it. See docs/adr/0010-group-commit.md.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::DomainEvent;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use infra::db::{PgTransaction, pipelined};

use crate::append::{EventRow, INSERT_EVENT};
use crate::error::StoreError;

/// The most commands one transaction takes.
pub const MAX_BATCH: usize = 256;

/// How many batches may be in flight at once. With one, the next batch could only start
/// after the previous one's commit (and its WAL flush) came back, and the machine idled
/// meanwhile; with two, one batch gathers and inserts while the other commits. Two batches
/// never both append to one stream: the second insert waits for the first's commit and
/// then fails its sequence, a conflict for that command alone (see `LOCK_TIMEOUT`), and a
/// batch inserts in the order of its streams' ids, so that two batches waiting for each
/// other's rows cannot wait in a circle.
pub const WRITERS: usize = 2;

/// How long an insert may wait for a row lock held by another transaction (a command in
/// its own transaction appending to the same stream) before it counts as a conflict; a
/// transaction held open elsewhere must not stall every grouped command.
const LOCK_TIMEOUT: &str = "500ms";

/// One command's append, waiting for its batch.
struct Submission {
    tenant_id: Uuid,
    rows: Vec<EventRow>,
    events: Vec<DomainEvent>,
    occurred_at: DateTime<Utc>,
    reply: oneshot::Sender<Result<Vec<i64>, StoreError>>,
}

/// The handle to the writer task; dropping every handle ends it.
#[derive(Clone)]
pub struct GroupWriter {
    queue: mpsc::Sender<Submission>,
}

impl GroupWriter {
    /// Starts the writers on the current Tokio runtime.
    pub fn start(pool: Pool) -> Self {
        let (queue, submissions) = mpsc::channel(4 * MAX_BATCH);
        let submissions = Arc::new(tokio::sync::Mutex::new(submissions));
        for _ in 0..WRITERS {
            tokio::spawn(run(pool.clone(), Arc::clone(&submissions)));
        }
        GroupWriter { queue }
    }

    /// Whether the writer task has ended (its runtime shut down).
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Appends `rows` (the events of one command, in order) in the next batch; returns their
    /// positions once the batch has committed.
    pub(crate) async fn submit(
        &self,
        tenant_id: Uuid,
        rows: Vec<EventRow>,
        events: Vec<DomainEvent>,
        occurred_at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Submission {
                tenant_id,
                rows,
                events,
                occurred_at,
                reply,
            })
            .await
            .map_err(|_| StoreError::Batch("the group-commit writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Batch("the group-commit writer stopped before answering".into())
        })?
    }
}

/// One writer: takes everything waiting (while it waits, the other writers wait for the
/// queue behind it), writes it as one batch, and answers each command.
async fn run(pool: Pool, submissions: Arc<tokio::sync::Mutex<mpsc::Receiver<Submission>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = {
            let mut queue = submissions.lock().await;
            queue.recv_many(&mut batch, MAX_BATCH).await
        };
        if received == 0 {
            break;
        }
        let size = batch.len();
        metrics::histogram!("eventra_group_commit_commands").record(size as f64);
        // Streams in one order in every batch (stable: one stream's commands keep theirs).
        batch.sort_by_key(|submission| submission.rows.first().map(|row| row.aggregate_id));
        match write(&pool, &batch).await {
            Ok(outcomes) => {
                for (submission, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = submission.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::warn!(%error, commands = size, "a group commit failed");
                let message = error.to_string();
                for submission in batch.drain(..) {
                    let _ = submission
                        .reply
                        .send(Err(StoreError::Batch(message.clone())));
                }
            }
        }
    }
}

/// What one statement of a batch answered: a position (an insert) or nothing.
type Step = Result<Option<i64>, tokio_postgres::Error>;

/// Writes one batch in one transaction; each command's outcome, or the batch's failure.
async fn write(
    pool: &Pool,
    batch: &[Submission],
) -> Result<Vec<Result<Vec<i64>, StoreError>>, StoreError> {
    let transaction = PgTransaction::begin(pool).await?;
    let client = transaction.client();
    client
        .batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await?;
    let insert = client.prepare_cached(INSERT_EVENT).await?;
    let savepoint = client.prepare_cached("SAVEPOINT grouped").await?;
    let release = client.prepare_cached("RELEASE SAVEPOINT grouped").await?;
    let mut outcomes: Vec<Option<Result<Vec<i64>, StoreError>>> =
        batch.iter().map(|_| None).collect();
    let mut start = 0;
    while start < batch.len() {
        // Every remaining command: SAVEPOINT, its inserts, RELEASE — all sent at once.
        let mut owners = Vec::new();
        let mut steps: Vec<std::pin::Pin<Box<dyn Future<Output = Step> + Send + '_>>> = Vec::new();
        for (index, submission) in batch.iter().enumerate().skip(start) {
            owners.push(index);
            steps.push(Box::pin(async {
                client.execute(&savepoint, &[]).await.map(|_| None)
            }));
            for row in &submission.rows {
                owners.push(index);
                steps.push(Box::pin(async {
                    row.insert(
                        client,
                        &insert,
                        submission.tenant_id,
                        submission.occurred_at,
                    )
                    .await
                    .map(Some)
                }));
            }
            owners.push(index);
            steps.push(Box::pin(async {
                client.execute(&release, &[]).await.map(|_| None)
            }));
        }
        let answers = pipelined(steps).await;
        let mut positions: Vec<Vec<i64>> = vec![Vec::new(); batch.len() - start];
        let mut failed = None;
        for (owner, answer) in owners.into_iter().zip(answers) {
            match answer {
                Ok(Some(position)) => positions[owner - start].push(position),
                Ok(None) => {}
                Err(error) => {
                    failed = Some((owner, error));
                    break;
                }
            }
        }
        let end = failed.as_ref().map_or(batch.len(), |(owner, _)| *owner);
        for (index, positions) in (start..end).zip(positions) {
            outcomes[index] = Some(Ok(positions));
        }
        let Some((owner, error)) = failed else { break };
        // Undo the failed command alone; the ones after it are sent again.
        client
            .batch_execute("ROLLBACK TO SAVEPOINT grouped; RELEASE SAVEPOINT grouped")
            .await?;
        outcomes[owner] = Some(Err(failure(error, &batch[owner])));
        start = owner + 1;
    }
    // The authentication state, in order, for what was appended (one round trip).
    let mut appended = Vec::new();
    for (submission, outcome) in batch.iter().zip(&outcomes) {
        if let Some(Ok(positions)) = outcome {
            for (event, position) in submission.events.iter().zip(positions) {
                appended.push(infra::auth_state::Appended {
                    tenant_id: submission.tenant_id,
                    position: *position,
                    event,
                    occurred_at: submission.occurred_at,
                });
            }
        }
    }
    infra::auth_state::apply_all(client, appended).await?;
    transaction.commit().await?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Err(StoreError::Batch("left out of its batch".into())))
        })
        .collect())
}

/// A command's own failure: its stream moved on (or is locked by a transaction that did
/// not end in time), or the database refused its rows.
fn failure(error: tokio_postgres::Error, submission: &Submission) -> StoreError {
    let code = error.code();
    let retryable = [
        SqlState::UNIQUE_VIOLATION,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
    ];
    if retryable.iter().any(|c| code == Some(c))
        && let Some(row) = submission.rows.first()
    {
        return StoreError::Conflict {
            aggregate_type: row.aggregate_type.to_owned(),
            aggregate_id: row.aggregate_id,
        };
    }
    StoreError::Database(error)
}
