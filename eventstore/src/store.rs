//! The store's handle: a pool, the key ring, the kept states and the group-commit writer,
//! shared by every unit of work of a process.

use std::sync::Arc;

use deadpool_postgres::Pool;
use infra::crypto::KeyRing;
use uuid::Uuid;

use crate::append::Changes;
use crate::error::StoreError;
use crate::group_commit::GroupWriter;
use crate::kept::KeptStates;
use crate::reader::Shared;
use crate::recorded::EventMetadata;
use crate::recorded::RecordedEvent;
use crate::stream::AppendedEvent;
use crate::unit::{Grouped, Transaction};

#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
    keys: Arc<KeyRing>,
    kept: Arc<KeptStates>,
    /// The group-commit writer, started on first use (and again if its runtime ended).
    writer: Arc<std::sync::Mutex<Option<GroupWriter>>>,
}

impl EventStore {
    pub fn new(pool: Pool, keys: Arc<KeyRing>) -> Self {
        EventStore {
            pool,
            keys,
            kept: Arc::default(),
            writer: Arc::default(),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub(crate) fn kept(&self) -> &KeptStates {
        &self.kept
    }

    pub(crate) fn shared(&self) -> Shared {
        Shared::new(Arc::clone(&self.keys), Arc::clone(&self.kept))
    }

    /// Starts a unit of work in its own transaction.
    pub async fn begin(&self) -> Result<Transaction, StoreError> {
        Transaction::begin(&self.pool, self.shared()).await
    }

    /// Starts a grouped unit of work: reads on pooled connections as they come, and one
    /// [`Grouped::append`] that joins the next group commit (see [`crate::group_commit`]).
    pub fn begin_grouped(&self) -> Grouped {
        self.grouped(self.shared())
    }

    /// A grouped unit that takes kept states without reading their streams (ADR 33); what
    /// it took so is [`Unit::unverified`].
    pub fn begin_grouped_trusting_kept(&self) -> Grouped {
        let mut shared = self.shared();
        shared.trust_kept = true;
        self.grouped(shared)
    }

    fn grouped(&self, shared: Shared) -> Grouped {
        let writer = {
            let mut writer = self
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*writer {
                Some(running) if !running.is_closed() => running.clone(),
                _ => writer.insert(GroupWriter::start(self.pool.clone())).clone(),
            }
        };
        Grouped::group_commit(self.pool.clone(), writer, shared)
    }

    /// Loads one stream outside any command (for reads).
    pub async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        crate::read::load_stream(&client, &self.keys, aggregate_type, aggregate_id, 0).await
    }

    /// Every event of the store in position order from `after`, decrypted (for tools).
    pub async fn load_all(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        crate::read::load_all(&client, &self.keys, after, limit).await
    }
}

/// The two kinds of unit, for code that runs commands of either kind.
pub trait Unit: Sized + Send + Sync {
    /// Whether the unit is always its own transaction (and may lock, reserve and erase).
    const OWN_TRANSACTION: bool;

    /// A unit for one command: a [`Grouped`] one joins the group commit.
    fn begin(store: &EventStore) -> impl Future<Output = Result<Self, StoreError>> + Send;

    /// A unit for one command that takes kept states without reading their streams
    /// (ADR 33); a unit in a transaction of its own always reads them.
    fn begin_trusting_kept(
        store: &EventStore,
    ) -> impl Future<Output = Result<Self, StoreError>> + Send {
        Self::begin(store)
    }

    /// A unit inside `transaction` (for a command whose answer is recorded with its events).
    fn within(transaction: Transaction) -> Self;

    /// The kept states this unit took without reading their streams, as `(aggregate,
    /// version)`: a decision may rest on them only if it appends to each of those streams
    /// at that version (the append then proves nothing came after).
    fn unverified(&self) -> Vec<(Uuid, i64)> {
        Vec::new()
    }

    fn reader(&self) -> crate::reader::Reader<'_>;

    /// Appends the changes; answers the transaction still to be committed, if the unit has
    /// one. A failed append rolls the unit back.
    fn append(
        self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> impl Future<Output = Result<(Vec<AppendedEvent>, Option<Transaction>), StoreError>> + Send;

    fn rollback(self) -> impl Future<Output = ()> + Send;
}

impl Unit for Transaction {
    const OWN_TRANSACTION: bool = true;

    async fn begin(store: &EventStore) -> Result<Self, StoreError> {
        store.begin().await
    }

    fn within(transaction: Transaction) -> Self {
        transaction
    }

    fn reader(&self) -> crate::reader::Reader<'_> {
        Transaction::reader(self)
    }

    async fn append(
        self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<(Vec<AppendedEvent>, Option<Transaction>), StoreError> {
        self.append_owned(changes, metadata).await
    }

    async fn rollback(self) {
        Transaction::rollback(self).await
    }
}

impl Unit for Grouped {
    const OWN_TRANSACTION: bool = false;

    async fn begin(store: &EventStore) -> Result<Self, StoreError> {
        Ok(store.begin_grouped())
    }

    async fn begin_trusting_kept(store: &EventStore) -> Result<Self, StoreError> {
        Ok(store.begin_grouped_trusting_kept())
    }

    fn unverified(&self) -> Vec<(Uuid, i64)> {
        Grouped::unverified(self)
    }

    fn within(transaction: Transaction) -> Self {
        Grouped::in_transaction(transaction)
    }

    fn reader(&self) -> crate::reader::Reader<'_> {
        Grouped::reader(self)
    }

    async fn append(
        self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<(Vec<AppendedEvent>, Option<Transaction>), StoreError> {
        Grouped::append(self, changes, metadata).await
    }

    async fn rollback(self) {
        Grouped::rollback(self).await
    }
}
