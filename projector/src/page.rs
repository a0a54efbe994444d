//! Applying a page of events to a projection's tables under one savepoint, isolating a
//! poison event (dead-lettered) from the rest of the page.

use deadpool_postgres::Object;
use eventstore::RecordedEvent;

use crate::checkpoint::dead_letter_event;
use crate::error::HandlerError;
use crate::projections::statements::{Statement, execute_pipelined};
use crate::projections::{Env, Projecting as _, Projection};

/// How a page of events reaches a projection's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applier {
    /// Each event's statements, in order (the live projections; a replay of most models).
    Statements,
    /// The users model folded a page at a time, each row written once (a replay: the fold
    /// is faster for large pages, the statements for the small batches of live traffic).
    FoldedUsers,
}

/// Applies a page of events in order under one savepoint. The statements of a Postgres
/// read model are pipelined (one round trip for the page); if one event is poison, the page
/// is rolled back and applied again event by event, so that only the poison one is
/// dead-lettered. `deliveries(i)` is how often the `i`-th event was delivered.
pub async fn apply_page(
    client: &Object,
    env: Env<'_>,
    projection: Projection,
    events: &[RecordedEvent],
    suffix: &str,
    applier: Applier,
    deliveries: &(dyn Fn(usize) -> i64 + Sync),
) -> Result<(), tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let outcome = if applier == Applier::FoldedUsers {
        // A replay folds the users model a page at a time (each row written once).
        client.batch_execute("SAVEPOINT apply_page").await?;
        crate::projections::users_fold::apply(client, events, suffix).await
    } else if projection.is_pipelined() {
        // The savepoint, the page's statements and the release go out together.
        let mut statements = Vec::with_capacity(events.len() + 2);
        statements.push(Statement::bare("SAVEPOINT apply_page"));
        let mut built = Ok(());
        for event in events {
            built = projection.statements(event, suffix, &mut statements);
            if built.is_err() {
                break;
            }
        }
        statements.push(Statement::bare("RELEASE SAVEPOINT apply_page"));
        match built {
            Ok(()) => match execute_pipelined(client, &statements).await {
                Ok(()) => return Ok(()),
                Err(error) => Err(error),
            },
            Err(error) => {
                client.batch_execute("SAVEPOINT apply_page").await?;
                Err(error)
            }
        }
    } else {
        client.batch_execute("SAVEPOINT apply_page").await?;
        let mut outcome = Ok(());
        for event in events {
            outcome = projection.apply(client, env, event, suffix).await;
            if outcome.is_err() {
                break;
            }
        }
        outcome
    };
    match outcome {
        Ok(()) => {}
        Err(HandlerError::Poison(_)) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT apply_page")
                .await?;
            for (i, event) in events.iter().enumerate() {
                apply_one(client, env, projection, event, suffix, deliveries(i)).await?;
            }
        }
        Err(HandlerError::Transient(error)) => return Err(error),
    }
    client.batch_execute("RELEASE SAVEPOINT apply_page").await
}

/// Applies one event inside a savepoint; a poison event is dead-lettered instead.
pub async fn apply_one(
    client: &Object,
    env: Env<'_>,
    projection: Projection,
    event: &RecordedEvent,
    suffix: &str,
    deliveries: i64,
) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("SAVEPOINT apply_event").await?;
    match projection.apply(client, env, event, suffix).await {
        Ok(()) => {
            client
                .batch_execute("RELEASE SAVEPOINT apply_event")
                .await?;
            Ok(())
        }
        Err(HandlerError::Poison(reason)) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT apply_event")
                .await?;
            dead_letter_event(client, projection, event, &reason, deliveries).await
        }
        Err(HandlerError::Transient(error)) => Err(error),
    }
}
