//! Units of work. Which kind a command gets decides what it can do, at compile time:
//!
//! - a [`Transaction`] is one database transaction: locks, reservations, idempotency
//!   records, appends to any number of streams, erasure; everything commits or rolls back
//!   together;
//! - a [`Grouped`] unit only reads and appends once ([`Grouped::append`] takes the unit), so
//!   its append may join the process's group commit — or, when the executor wants the
//!   command's answer recorded with its events, run in a transaction of its own.
//!
//! Both read through a [`Reader`]; code that runs commands of either kind uses the
//! [`crate::Unit`] trait.

use deadpool_postgres::{Object, Pool};
use infra::crypto::KeyRing;
use infra::db::PgTransaction;
use uuid::Uuid;

use crate::append::{self, Changes, count_appended};
use crate::error::StoreError;
use crate::group_commit::GroupWriter;
use crate::kept::PendingKeep;
use crate::reader::{Reader, Shared, Source};
use crate::recorded::EventMetadata;
use crate::stream::AppendedEvent;

/// One command's transaction. Dropped without [`Transaction::commit`], everything it did is
/// rolled back.
pub struct Transaction {
    transaction: Box<PgTransaction>,
    pub(crate) shared: Shared,
    /// States to keep once this transaction commits.
    to_keep: std::sync::Mutex<Vec<(Vec<PendingKeep>, Vec<AppendedEvent>)>>,
    /// The types of the events appended, counted once the transaction commits.
    appended: std::sync::Mutex<Vec<&'static str>>,
}

impl Transaction {
    pub(crate) async fn begin(pool: &Pool, shared: Shared) -> Result<Self, StoreError> {
        let transaction = PgTransaction::begin(pool).await?;
        Ok(Transaction {
            transaction: Box::new(transaction),
            shared,
            to_keep: std::sync::Mutex::default(),
            appended: std::sync::Mutex::default(),
        })
    }

    pub fn reader(&self) -> Reader<'_> {
        Reader {
            source: Source::Transaction(self.transaction.client()),
            shared: &self.shared,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.shared.keys
    }

    /// The transaction's connection.
    pub(crate) fn client(&self) -> &Object {
        self.transaction.client()
    }

    pub(crate) fn forget_pending(&self, subject_id: Uuid) {
        self.to_keep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter_mut()
            .for_each(|(pending, _)| pending.retain(|keep| keep.aggregate_id != subject_id));
    }

    /// Serialises, per tenant, the commands that decide against the tenant's membership
    /// (role and status changes, erasure), until this transaction ends.
    #[tracing::instrument(skip(self))]
    pub async fn lock_tenant_membership(&self, tenant_id: Uuid) -> Result<(), StoreError> {
        self.client()
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('eventra.membership.' || $1, 0))",
                &[&tenant_id.to_string()],
            )
            .await?;
        Ok(())
    }

    /// Appends the changes. Each stream's events take the sequences after its expected
    /// version; a stream that moved on in the meantime makes this a
    /// [`StoreError::Conflict`] and nothing is written. The authentication state is updated
    /// in the same transaction.
    #[tracing::instrument(skip_all, fields(tenant_id = %changes.tenant_id, events = changes.events.len()))]
    pub async fn append(
        &self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<Vec<AppendedEvent>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let rows = append::rows(&self.reader(), &changes, metadata).await?;
        let appended = append::insert_rows(self.client(), &changes, &rows).await?;
        self.appended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(rows.iter().map(|row| row.event_type));
        if !changes.keep.is_empty() {
            self.to_keep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((changes.keep, appended.clone()));
        }
        Ok(appended)
    }

    /// Appends, and hands the transaction back to be committed; a failed append rolls it
    /// back, so that its connection goes back to the pool.
    pub(crate) async fn append_owned(
        self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<(Vec<AppendedEvent>, Option<Transaction>), StoreError> {
        match self.append(changes, metadata).await {
            Ok(appended) => Ok((appended, Some(self))),
            Err(error) => {
                self.rollback().await;
                Err(error)
            }
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.transaction.commit().await?;
        let to_keep = std::mem::take(
            &mut *self
                .to_keep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (pending, appended) in to_keep {
            PendingKeep::resolve_all(pending, &self.shared.kept, &appended);
        }
        count_appended(std::mem::take(
            &mut *self
                .appended
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
        Ok(())
    }

    pub async fn rollback(self) {
        self.transaction.rollback().await;
    }
}

/// A unit that only reads and appends once.
///
/// What only a transaction can do does not compile on it, and neither does a second append
/// (the first takes the unit). A transaction does all of it:
///
/// ```no_run
/// # async fn example(store: eventstore::EventStore, id: uuid::Uuid) -> Result<(), eventstore::StoreError> {
/// let transaction = store.begin().await?;
/// transaction.lock_tenant_membership(id).await?;
/// transaction.reserve(id, "email", b"hash", id).await?;
/// transaction.claim_idempotency("scope", "key", b"hash").await?;
/// transaction.commit().await
/// # }
/// ```
///
/// A reservation on a grouped unit:
///
/// ```compile_fail
/// # async fn example(store: eventstore::EventStore, id: uuid::Uuid) {
/// let unit = store.begin_grouped();
/// let _ = unit.reserve(id, "email", b"hash", id).await;
/// # }
/// ```
///
/// The tenant's membership lock, or an idempotency key, on a grouped unit:
///
/// ```compile_fail
/// # async fn example(store: eventstore::EventStore, id: uuid::Uuid) {
/// let unit = store.begin_grouped();
/// let _ = unit.lock_tenant_membership(id).await;
/// # }
/// ```
///
/// ```compile_fail
/// # async fn example(store: eventstore::EventStore) {
/// let unit = store.begin_grouped();
/// let _ = unit.claim_idempotency("scope", "key", b"hash").await;
/// # }
/// ```
///
/// A second append:
///
/// ```compile_fail
/// # async fn example(store: eventstore::EventStore, changes: fn() -> eventstore::Changes) {
/// let metadata = eventstore::EventMetadata::default();
/// let unit = store.begin_grouped();
/// let _ = unit.append(changes(), &metadata).await;
/// let _ = unit.append(changes(), &metadata).await;
/// # }
/// ```
///
/// The same append once compiles:
///
/// ```no_run
/// # async fn example(store: eventstore::EventStore, changes: fn() -> eventstore::Changes) {
/// let metadata = eventstore::EventMetadata::default();
/// let unit = store.begin_grouped();
/// let _ = unit.append(changes(), &metadata).await;
/// # }
/// ```
pub struct Grouped(GroupedBy);

enum GroupedBy {
    /// Reads on pooled connections as they come; the append joins the next group commit.
    GroupCommit {
        pool: Pool,
        writer: GroupWriter,
        shared: Shared,
    },
    /// Everything in a transaction of its own.
    Transaction(Transaction),
}

impl Grouped {
    pub(crate) fn group_commit(pool: Pool, writer: GroupWriter, shared: Shared) -> Self {
        Grouped(GroupedBy::GroupCommit {
            pool,
            writer,
            shared,
        })
    }

    /// A grouped unit inside a transaction of its own.
    pub(crate) fn in_transaction(transaction: Transaction) -> Self {
        Grouped(GroupedBy::Transaction(transaction))
    }

    pub fn reader(&self) -> Reader<'_> {
        match &self.0 {
            GroupedBy::GroupCommit { pool, shared, .. } => Reader {
                source: Source::Pool(pool),
                shared,
            },
            GroupedBy::Transaction(transaction) => transaction.reader(),
        }
    }

    /// The kept states this unit took without reading their streams (ADR 33).
    pub fn unverified(&self) -> Vec<(Uuid, i64)> {
        match &self.0 {
            GroupedBy::GroupCommit { shared, .. } => shared
                .unverified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            GroupedBy::Transaction(_) => Vec::new(),
        }
    }

    pub fn keys(&self) -> &KeyRing {
        match &self.0 {
            GroupedBy::GroupCommit { shared, .. } => &shared.keys,
            GroupedBy::Transaction(transaction) => transaction.keys(),
        }
    }

    /// Appends the changes, once: in the next group commit (committed when this answers), or
    /// in the unit's own transaction, which is handed back to be committed.
    pub async fn append(
        self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<(Vec<AppendedEvent>, Option<Transaction>), StoreError> {
        match self.0 {
            GroupedBy::Transaction(transaction) => {
                transaction.append_owned(changes, metadata).await
            }
            GroupedBy::GroupCommit {
                pool,
                writer,
                shared,
            } => {
                if changes.is_empty() {
                    return Ok((Vec::new(), None));
                }
                let reader = Reader {
                    source: Source::Pool(&pool),
                    shared: &shared,
                };
                let rows = append::rows(&reader, &changes, metadata).await?;
                let ids: Vec<(Uuid, Uuid, i64, &'static str)> = rows
                    .iter()
                    .map(|row| (row.event_id, row.aggregate_id, row.sequence, row.event_type))
                    .collect();
                let Changes {
                    tenant_id,
                    occurred_at,
                    events,
                    keep,
                    ..
                } = changes;
                let positions = writer.submit(tenant_id, rows, events, occurred_at).await?;
                let appended: Vec<AppendedEvent> = ids
                    .iter()
                    .zip(positions)
                    .map(
                        |(&(event_id, aggregate_id, sequence, _), position)| AppendedEvent {
                            event_id,
                            aggregate_id,
                            sequence,
                            position,
                        },
                    )
                    .collect();
                count_appended(ids.into_iter().map(|(_, _, _, event_type)| event_type));
                PendingKeep::resolve_all(keep, &shared.kept, &appended);
                Ok((appended, None))
            }
        }
    }

    /// Ends the unit without appending (its own transaction, if it has one, rolls back).
    pub async fn rollback(self) {
        if let GroupedBy::Transaction(transaction) = self.0 {
            transaction.rollback().await;
        }
    }
}
