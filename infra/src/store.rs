//! The Postgres event store.
//!
//! A command runs in one [`UnitOfWork`]: one database transaction in which it claims its
//! idempotency key, loads state, reserves unique values, appends events with an expected
//! version per stream, updates the authentication state, and commits — all or nothing.
//! Personal data is encrypted on the way in and decrypted on the way out, here and only here.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};
use domain::DomainEvent;
use futures_util::TryStreamExt as _;
use serde_json::Value;
use thiserror::Error;
// Pooled connections: their statement cache keeps the hot queries parsed and planned.
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::crypto::{CryptoError, DataKey, ENCRYPTED_PREFIX, ERASED, KeyRing};
use crate::db::{BeginError, PgTransaction};
use crate::envelope::{EventMetadata, RecordedEvent};
use crate::group_commit::GroupWriter;
use crate::upcast::{UpcastError, upcast};

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
    /// A grouped unit of work (no transaction of its own) was asked for something only a
    /// transaction can do: a bug in the command, never the client's fault.
    #[error("{0} needs a unit of work with its own transaction")]
    NeedsTransaction(&'static str),
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

/// The expected version of one stream: the number of events the decision saw in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedVersion {
    pub aggregate_id: Uuid,
    pub version: i64,
}

/// What an append gave each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub aggregate_id: Uuid,
    pub sequence: i64,
    pub position: i64,
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// First use: run the command.
    Fresh,
    /// Already answered: return this answer and do nothing.
    Replay { status: u16, body: Value },
    /// The key was used before with a different request.
    Mismatch,
}

#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
    keys: Arc<KeyRing>,
    kept: Arc<KeptStates>,
    /// The group-commit writer, started on first use (and again if its runtime ended).
    writer: Arc<std::sync::Mutex<Option<GroupWriter>>>,
}

/// How many folded streams a process keeps between commands.
const KEPT_STATES: usize = 10_000;

/// States folded from streams by earlier commands of this process, each with the version
/// (last sequence) it was folded up to, so the next command on the stream reads only the
/// events appended since instead of the whole stream. The store stays the truth: events
/// are immutable and a stream's sequences commit in order, so a state at version `v` plus
/// the committed events after `v` is the state of the whole stream; and an append still
/// checks the expected version. Bounded: when full, everything is dropped.
#[derive(Default)]
struct KeptStates {
    states: std::sync::Mutex<HashMap<(&'static str, Uuid), Kept>>,
}

/// A kept state with the version and position of the stream's last event folded into it.
#[derive(Clone)]
pub struct Kept {
    pub state: Arc<dyn std::any::Any + Send + Sync>,
    pub version: i64,
    pub last_position: i64,
}

impl KeptStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, Uuid), Kept>> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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

    /// Starts a unit of work (a transaction).
    pub async fn begin(&self) -> Result<UnitOfWork, StoreError> {
        let transaction = PgTransaction::begin(&self.pool)
            .await
            .map_err(|e| match e {
                BeginError::Pool(e) => StoreError::Pool(e),
                BeginError::Database(e) => StoreError::Database(e),
            })?;
        Ok(UnitOfWork {
            mode: Mode::Transaction(Box::new(transaction)),
            keys: Arc::clone(&self.keys),
            kept: Arc::clone(&self.kept),
            opened: std::sync::Mutex::default(),
            to_keep: std::sync::Mutex::default(),
            appended: std::sync::Mutex::default(),
        })
    }

    /// Starts a grouped unit of work: reads on pooled connections as they come, and one
    /// [`UnitOfWork::append`] that joins the next group commit (see
    /// [`crate::group_commit`]). For commands that only append to streams they loaded, with
    /// no reservation, lock or idempotency record.
    pub fn begin_grouped(&self) -> UnitOfWork {
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
        UnitOfWork {
            mode: Mode::Grouped {
                pool: self.pool.clone(),
                writer,
                appended: std::sync::atomic::AtomicBool::new(false),
            },
            keys: Arc::clone(&self.keys),
            kept: Arc::clone(&self.kept),
            opened: std::sync::Mutex::default(),
            to_keep: std::sync::Mutex::default(),
            appended: std::sync::Mutex::default(),
        }
    }

    /// Loads one stream outside any command (for reads).
    pub async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        load_stream(&client, &self.keys, aggregate_type, aggregate_id, 0).await
    }

    /// Forgets idempotency keys recorded before `older_than` (a retry after that runs the
    /// command again). Returns how many were removed.
    pub async fn purge_idempotency_keys(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at < $1",
                &[&older_than],
            )
            .await?)
    }

    /// Every event of the store in position order from `after`, decrypted (for tools).
    pub async fn load_all(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"),
                &[&after, &limit],
            )
            .await?;
        decode_rows(&client, &self.keys, rows).await
    }
}

/// An event as it is inserted: personal fields sealed, metadata serialised.
pub(crate) struct EventRow {
    pub(crate) event_id: Uuid,
    pub(crate) aggregate_type: &'static str,
    pub(crate) aggregate_id: Uuid,
    pub(crate) sequence: i64,
    pub(crate) event_type: &'static str,
    pub(crate) schema_version: i32,
    pub(crate) data: Value,
    pub(crate) metadata: Value,
}

impl EventRow {
    /// Inserts the row with `statement` ([`INSERT_EVENT`]) and answers its position. The
    /// request is sent on the first poll, as [`crate::db::pipelined`] needs.
    pub(crate) async fn insert(
        &self,
        client: &Client,
        statement: &tokio_postgres::Statement,
        tenant_id: Uuid,
        occurred_at: DateTime<Utc>,
    ) -> Result<i64, tokio_postgres::Error> {
        let params: [&(dyn ToSql + Sync); 10] = [
            &self.event_id,
            &tenant_id,
            &self.aggregate_type,
            &self.aggregate_id,
            &self.sequence,
            &self.event_type,
            &self.schema_version,
            &self.data,
            &self.metadata,
            &occurred_at,
        ];
        let answer = client.query_raw(statement, params).await?;
        let mut answer = std::pin::pin!(answer);
        Ok(answer
            .try_next()
            .await?
            .map(|row| row.get(0))
            .unwrap_or_default())
    }
}

/// Inserts one event and answers its position.
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, sequence, type,
                         version, data, metadata, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     RETURNING position";

/// One command's transaction. Dropped without [`UnitOfWork::commit`], everything it did is
/// rolled back.
pub struct UnitOfWork {
    mode: Mode,
    keys: Arc<KeyRing>,
    kept: Arc<KeptStates>,
    /// The data keys this transaction has opened (a command loads a stream, then appends to
    /// it: the key is fetched once).
    opened: std::sync::Mutex<HashMap<Uuid, Arc<DataKey>>>,
    /// States to keep once this unit commits.
    to_keep: std::sync::Mutex<Vec<(&'static str, Uuid, Kept)>>,
    /// The types of the events appended, counted once the transaction commits.
    appended: std::sync::Mutex<Vec<&'static str>>,
}

/// How a unit of work reaches the database.
enum Mode {
    /// Its own transaction: everything it does commits or rolls back together.
    Transaction(Box<PgTransaction>),
    /// No transaction of its own: reads on pooled connections, one append through the
    /// group-commit writer.
    Grouped {
        pool: Pool,
        writer: GroupWriter,
        appended: std::sync::atomic::AtomicBool,
    },
}

/// A connection for one operation: the transaction's, or one from the pool.
enum Connection<'a> {
    Borrowed(&'a Object),
    Pooled(Box<Object>),
}

impl std::ops::Deref for Connection<'_> {
    type Target = Object;

    fn deref(&self) -> &Object {
        match self {
            Connection::Borrowed(client) => client,
            Connection::Pooled(client) => client,
        }
    }
}

impl UnitOfWork {
    /// The transaction's connection; `operation` names what needed it.
    fn client_for(&self, operation: &'static str) -> Result<&Object, StoreError> {
        match &self.mode {
            Mode::Transaction(transaction) => Ok(transaction.client()),
            Mode::Grouped { .. } => Err(StoreError::NeedsTransaction(operation)),
        }
    }

    /// A connection for a read (or a write that stands on its own).
    async fn connection(&self) -> Result<Connection<'_>, StoreError> {
        match &self.mode {
            Mode::Transaction(transaction) => Ok(Connection::Borrowed(transaction.client())),
            Mode::Grouped { pool, .. } => Ok(Connection::Pooled(Box::new(pool.get().await?))),
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        if let Mode::Transaction(transaction) = self.mode {
            transaction.commit().await?;
        }
        let to_keep = std::mem::take(
            &mut *self
                .to_keep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (aggregate_type, aggregate_id, kept) in to_keep {
            self.kept.keep(aggregate_type, aggregate_id, kept);
        }
        let appended = std::mem::take(
            &mut *self
                .appended
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for event_type in appended {
            metrics::counter!("eventra_events_appended_total", "type" => event_type).increment(1);
        }
        Ok(())
    }

    /// Rolls the transaction back; a grouped unit has nothing to roll back (its append, if
    /// it made one, has committed).
    pub async fn rollback(self) {
        if let Mode::Transaction(transaction) = self.mode {
            transaction.rollback().await;
        }
    }

    /// Serialises, per tenant, the commands that decide against the tenant's membership
    /// (role and status changes, erasure), until this transaction ends.
    #[tracing::instrument(skip(self))]
    pub async fn lock_tenant_membership(&self, tenant_id: Uuid) -> Result<(), StoreError> {
        self.client_for("locking the membership")?
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('eventra.membership.' || $1, 0))",
                &[&tenant_id.to_string()],
            )
            .await?;
        Ok(())
    }

    /// Claims an idempotency key. A concurrent claim of the same key waits for this
    /// transaction and then sees its answer.
    #[tracing::instrument(skip(self, request_hash))]
    pub async fn claim_idempotency(
        &self,
        scope: &str,
        key: &str,
        request_hash: &[u8],
    ) -> Result<IdempotencyClaim, StoreError> {
        let client = self.client_for("an idempotency key")?;
        let inserted = client
            .execute(
                "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&scope, &key, &request_hash],
            )
            .await?;
        if inserted == 1 {
            return Ok(IdempotencyClaim::Fresh);
        }
        let row = client
            .query_one(
                "SELECT request_hash, response_status, response_body FROM idempotency_keys
                 WHERE scope = $1 AND idempotency_key = $2",
                &[&scope, &key],
            )
            .await?;
        let stored_hash: Vec<u8> = row.get(0);
        if stored_hash != request_hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        let status: Option<i16> = row.get(1);
        let body: Option<Value> = row.get(2);
        Ok(IdempotencyClaim::Replay {
            status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
            body: body.unwrap_or(Value::Null),
        })
    }

    /// Records the answer to replay for the claimed key.
    pub async fn complete_idempotency(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), StoreError> {
        let status = i16::try_from(status).unwrap_or(200);
        self.client_for("an idempotency key")?
            .execute(
                "UPDATE idempotency_keys SET response_status = $3, response_body = $4
                 WHERE scope = $1 AND idempotency_key = $2",
                &[&scope, &key, &status, body],
            )
            .await?;
        Ok(())
    }

    /// Releases a claimed key (the command was refused; a retry runs it afresh).
    pub async fn forget_idempotency(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.client_for("an idempotency key")?
            .execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
                &[&scope, &key],
            )
            .await?;
        Ok(())
    }

    pub async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.connection().await?;
        load_stream(&client, &self.keys, aggregate_type, aggregate_id, 0).await
    }

    /// The events of one stream after sequence `after`, personal data opened.
    pub async fn load_stream_after(
        &self,
        aggregate_type: &str,
        aggregate_id: Uuid,
        after: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.connection().await?;
        let rows = stream_rows(&client, aggregate_type, aggregate_id, after).await?;
        let mut opened = std::mem::take(&mut *self.opened_keys());
        let events = decode_rows_with(&client, &self.keys, rows, &mut opened).await;
        self.opened_keys().extend(opened);
        events
    }

    fn opened_keys(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<DataKey>>> {
        self.opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state an earlier command of this process folded from the stream, if kept.
    pub fn kept(&self, aggregate_type: &'static str, aggregate_id: Uuid) -> Option<Kept> {
        self.kept
            .lock()
            .get(&(aggregate_type, aggregate_id))
            .cloned()
    }

    /// Keeps a state folded from the committed events of a stream up to `version`.
    pub fn keep(&self, aggregate_type: &'static str, aggregate_id: Uuid, kept: Kept) {
        self.kept.keep(aggregate_type, aggregate_id, kept);
    }

    /// Keeps a state that includes what this unit appended, once (and only if) it commits.
    pub fn keep_once_committed(
        &self,
        aggregate_type: &'static str,
        aggregate_id: Uuid,
        kept: Kept,
    ) {
        self.to_keep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((aggregate_type, aggregate_id, kept));
    }
}

impl KeptStates {
    fn keep(&self, aggregate_type: &'static str, aggregate_id: Uuid, kept: Kept) {
        let mut states = self.lock();
        if states.len() >= KEPT_STATES {
            states.clear();
        }
        match states.entry((aggregate_type, aggregate_id)) {
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                if entry.get().version < kept.version {
                    entry.insert(kept);
                }
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(kept);
            }
        }
    }
}

impl UnitOfWork {
    /// The membership events of every user of a tenant, in order.
    #[tracing::instrument(skip(self))]
    pub async fn load_membership_events(
        &self,
        tenant_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let types: Vec<&str> = domain::TenantMembers::EVENT_TYPES.to_vec();
        let client = self.connection().await?;
        let rows = client
            .query(
                &format!(
                    "{SELECT_EVENTS} WHERE tenant_id = $1 AND aggregate_type = 'user' AND type = ANY($2)
                     ORDER BY position"
                ),
                &[&tenant_id, &types],
            )
            .await?;
        decode_rows(&client, &self.keys, rows).await
    }

    /// Reserves a unique value for `owner` within a tenant.
    #[tracing::instrument(skip(self, value_hash))]
    pub async fn reserve(
        &self,
        tenant_id: Uuid,
        kind: &str,
        value_hash: &[u8],
        owner_id: Uuid,
    ) -> Result<(), StoreError> {
        let result = self
            .client_for("a reservation")?
            .execute(
                "INSERT INTO unique_reservations (tenant_id, kind, value_hash, owner_id) VALUES ($1, $2, $3, $4)",
                &[&tenant_id, &kind, &value_hash, &owner_id],
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Duplicate {
                    kind: kind.to_owned(),
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Who holds a unique value, if anyone.
    pub async fn reservation_owner(
        &self,
        tenant_id: Uuid,
        kind: &str,
        value_hash: &[u8],
    ) -> Result<Option<Uuid>, StoreError> {
        let row = self
            .connection()
            .await?
            .query_opt(
                "SELECT owner_id FROM unique_reservations WHERE tenant_id = $1 AND kind = $2 AND value_hash = $3",
                &[&tenant_id, &kind, &value_hash],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Appends events to their streams. Each stream's events take the sequences after its
    /// expected version; a stream that moved on in the meantime makes this a
    /// [`StoreError::Conflict`] and nothing is written. The authentication state is updated
    /// in the same transaction.
    #[tracing::instrument(skip(self, events, metadata), fields(events = events.len()))]
    pub async fn append(
        &self,
        tenant_id: Uuid,
        expected: &[ExpectedVersion],
        events: &[DomainEvent],
        metadata: &EventMetadata,
        occurred_at: DateTime<Utc>,
    ) -> Result<Vec<AppendedEvent>, StoreError> {
        let mut versions: HashMap<Uuid, i64> = expected
            .iter()
            .map(|e| (e.aggregate_id, e.version))
            .collect();
        // Every row first (each subject's key fetched once per transaction), then all
        // inserts at once.
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            let event_id = Uuid::now_v7();
            let aggregate_id = event.aggregate_id();
            let version = versions.entry(aggregate_id).or_insert(0);
            *version += 1;
            let mut data = event_data(event)?;
            let mut event_metadata = metadata.clone();
            if let Some(subject) = event.data_subject() {
                // The key is needed only when there is something personal to seal.
                if has_personal_values(&data, event.personal_fields()) {
                    let key = self.data_key(tenant_id, subject).await?;
                    encrypt_fields(&key, event_id, event.personal_fields(), &mut data)?;
                }
                event_metadata.data_subject = Some(subject);
            }
            rows.push(EventRow {
                event_id,
                aggregate_type: event.aggregate_type(),
                aggregate_id,
                sequence: *version,
                event_type: event.event_type(),
                schema_version: event.schema_version(),
                data,
                metadata: serde_json::to_value(&event_metadata)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            });
        }
        if let Mode::Grouped {
            writer, appended, ..
        } = &self.mode
        {
            // One append per grouped unit: two would commit separately.
            if appended.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::NeedsTransaction("a second append"));
            }
            let ids: Vec<(Uuid, Uuid, i64, &'static str)> = rows
                .iter()
                .map(|row| (row.event_id, row.aggregate_id, row.sequence, row.event_type))
                .collect();
            let positions = writer
                .submit(tenant_id, rows, events.to_vec(), occurred_at)
                .await?;
            let mut appended = Vec::with_capacity(ids.len());
            for ((event_id, aggregate_id, sequence, event_type), position) in
                ids.into_iter().zip(positions)
            {
                metrics::counter!("eventra_events_appended_total", "type" => event_type)
                    .increment(1);
                appended.push(AppendedEvent {
                    event_id,
                    aggregate_id,
                    sequence,
                    position,
                });
            }
            return Ok(appended);
        }
        let client = self.client_for("an append")?;
        let statement = client.prepare_cached(INSERT_EVENT).await?;
        let inserts = rows
            .iter()
            .map(|row| Box::pin(row.insert(client, &statement, tenant_id, occurred_at)))
            .collect();
        let positions = crate::db::pipelined(inserts).await;
        let mut appended = Vec::with_capacity(events.len());
        for ((position, event), row) in positions.into_iter().zip(events).zip(&rows) {
            let position = match position {
                Ok(position) => position,
                Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(StoreError::Conflict {
                        aggregate_type: row.aggregate_type.to_owned(),
                        aggregate_id: row.aggregate_id,
                    });
                }
                Err(error) => return Err(error.into()),
            };
            self.appended
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(row.event_type);
            crate::auth_state::apply(client, tenant_id, position, event, occurred_at).await?;
            appended.push(AppendedEvent {
                event_id: row.event_id,
                aggregate_id: row.aggregate_id,
                sequence: row.sequence,
                position,
            });
        }
        Ok(appended)
    }

    /// Crypto-shredding: destroys the subject's data key and releases their reserved unique
    /// values, so nothing personal about them can be read or matched again.
    #[tracing::instrument(skip(self))]
    pub async fn erase_subject(&self, tenant_id: Uuid, subject_id: Uuid) -> Result<(), StoreError> {
        // Nothing personal stays in memory either (a later load folds the erasure anew).
        self.kept.lock().retain(|(_, id), _| *id != subject_id);
        self.to_keep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(_, id, _)| *id != subject_id);
        self.opened_keys().remove(&subject_id);
        let client = self.client_for("an erasure")?;
        client
            .execute(
                "DELETE FROM data_keys WHERE subject_id = $1",
                &[&subject_id],
            )
            .await?;
        client
            .execute(
                "INSERT INTO erased_subjects (subject_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&subject_id, &tenant_id],
            )
            .await?;
        client
            .execute(
                "DELETE FROM unique_reservations WHERE owner_id = $1",
                &[&subject_id],
            )
            .await?;
        crate::email_jobs::forget_recipient(client, subject_id).await?;
        Ok(())
    }

    /// Queues an email in this transaction (the deletion confirmation, which must capture
    /// the address before the key that opens it is destroyed).
    pub async fn queue_email(
        &self,
        job: &crate::email_jobs::NewJob,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(crate::email_jobs::enqueue(self.client_for("queueing an email")?, job).await?)
    }

    /// The subject's data key, created on first use.
    async fn data_key(
        &self,
        tenant_id: Uuid,
        subject_id: Uuid,
    ) -> Result<Arc<DataKey>, StoreError> {
        if let Some(key) = self.opened_keys().get(&subject_id) {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(self.fetch_or_create_data_key(tenant_id, subject_id).await?);
        self.opened_keys().insert(subject_id, Arc::clone(&key));
        Ok(key)
    }

    async fn fetch_or_create_data_key(
        &self,
        tenant_id: Uuid,
        subject_id: Uuid,
    ) -> Result<DataKey, StoreError> {
        let client = self.connection().await?;
        if let Some(key) = fetch_data_key(&client, &self.keys, subject_id).await? {
            return Ok(key);
        }
        let erased = client
            .query_opt(
                "SELECT 1 FROM erased_subjects WHERE subject_id = $1",
                &[&subject_id],
            )
            .await?;
        if erased.is_some() {
            return Err(StoreError::SubjectErased);
        }
        let key = DataKey::generate()?;
        let wrapped = self.keys.wrap(subject_id, &key)?;
        client
            .execute(
                "INSERT INTO data_keys (subject_id, tenant_id, master_key_id, wrapped_key)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (subject_id) DO NOTHING",
                &[
                    &subject_id,
                    &tenant_id,
                    &self.keys.master_key_id(),
                    &wrapped,
                ],
            )
            .await?;
        // Another transaction may have won the insert; read back whichever key is stored.
        fetch_data_key(&client, &self.keys, subject_id)
            .await?
            .ok_or(StoreError::SubjectErased)
    }
}

/// The columns of an event. The numeric transaction id has its own name: were it called
/// `transaction_id`, an `ORDER BY transaction_id` would sort by that expression instead of
/// walking the `(transaction_id, position)` index (a full sort per page of a replay).
const SELECT_EVENTS: &str =
    "SELECT position, event_id, tenant_id, aggregate_type, aggregate_id, sequence, type,
        version, data, metadata, occurred_at, transaction_id::text::bigint AS transaction_number
       FROM events";

/// What to read from the store in publication order.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadRange {
    /// Only events after this `(transaction_id, position)` pair.
    pub after: (i64, i64),
    /// Only events up to and including this pair; otherwise up to the visibility horizon.
    pub up_to: Option<(i64, i64)>,
    /// Only this tenant's events.
    pub tenant_id: Option<Uuid>,
    pub limit: i64,
}

/// Reads committed events in publication order, `(transaction_id, position)`, only from
/// transactions below the visibility horizon, so an event that commits late is never
/// skipped (ADR 2). With `decrypt`, personal fields are opened; without, they stay as
/// stored (what the relay publishes).
pub async fn read_in_order(
    client: &Client,
    keys: &KeyRing,
    range: ReadRange,
    decrypt: bool,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let (up_to_transaction, up_to_position) = range.up_to.unwrap_or((i64::MAX, i64::MAX));
    let rows = client
        .query(
            &format!(
                "{SELECT_EVENTS}
                  WHERE (transaction_id, position) > ($1::bigint::text::xid8, $2)
                    AND (transaction_id, position) <= ($3::bigint::text::xid8, $4)
                    AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                    AND ($5::uuid IS NULL OR tenant_id = $5)
                  ORDER BY transaction_id, position
                  LIMIT $6"
            ),
            &[
                &range.after.0,
                &range.after.1,
                &up_to_transaction,
                &up_to_position,
                &range.tenant_id,
                &range.limit,
            ],
        )
        .await?;
    if decrypt {
        decode_rows(client, keys, rows).await
    } else {
        rows.into_iter().map(|row| decode_row(row, None)).collect()
    }
}

/// Opens the personal fields of events read without decryption (from messages), with every
/// subject's key fetched in one query. The outer error is the database's; each event has
/// its own result, since a key or a field that cannot be opened concerns that event only.
pub async fn decrypt_personal_data(
    client: &Client,
    keys: &KeyRing,
    events: &mut [RecordedEvent],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let subjects: Vec<Uuid> = events
        .iter()
        .filter_map(|event| event.metadata.data_subject)
        .collect();
    let wrapped = fetch_wrapped_keys(client, &subjects).await?;
    let mut opened: HashMap<Uuid, Result<Option<DataKey>, CryptoError>> = HashMap::new();
    Ok(events
        .iter_mut()
        .map(|event| {
            let Some(subject) = event.metadata.data_subject else {
                return Ok(());
            };
            let key = opened.entry(subject).or_insert_with(|| {
                wrapped
                    .get(&subject)
                    .map(|wrapped| keys.unwrap(subject, wrapped))
                    .transpose()
            });
            match key {
                Ok(key) => decrypt_fields(key.as_ref(), event.event_id, &mut event.data),
                Err(error) => Err(StoreError::Crypto(*error)),
            }
        })
        .collect())
}

/// Loads one stream from sequence `after + 1` on, personal data opened (or marked erased).
pub async fn load_stream(
    client: &ClientWrapper,
    keys: &KeyRing,
    aggregate_type: &str,
    aggregate_id: Uuid,
    after: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = stream_rows(client, aggregate_type, aggregate_id, after).await?;
    decode_rows(client, keys, rows).await
}

async fn stream_rows(
    client: &ClientWrapper,
    aggregate_type: &str,
    aggregate_id: Uuid,
    after: i64,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    // Every command loads a stream: a cached statement (one round trip, planned once).
    let statement = client
        .prepare_cached(&format!(
            "{SELECT_EVENTS} WHERE aggregate_id = $2 AND sequence > $3 AND aggregate_type = $1
              ORDER BY sequence"
        ))
        .await?;
    Ok(client
        .query(&statement, &[&aggregate_type, &aggregate_id, &after])
        .await?)
}

async fn fetch_data_key(
    client: &ClientWrapper,
    keys: &KeyRing,
    subject_id: Uuid,
) -> Result<Option<DataKey>, StoreError> {
    let statement = client
        .prepare_cached("SELECT wrapped_key FROM data_keys WHERE subject_id = $1")
        .await?;
    let row = client.query_opt(&statement, &[&subject_id]).await?;
    match row {
        Some(row) => {
            let wrapped: Vec<u8> = row.get(0);
            Ok(Some(keys.unwrap(subject_id, &wrapped)?))
        }
        None => Ok(None),
    }
}

/// The wrapped data keys of `subjects` (duplicates allowed), in one query; a subject
/// without a row has been erased.
async fn fetch_wrapped_keys(
    client: &Client,
    subjects: &[Uuid],
) -> Result<HashMap<Uuid, Vec<u8>>, StoreError> {
    if subjects.is_empty() {
        return Ok(HashMap::new());
    }
    let mut distinct = subjects.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let rows = client
        .query_typed(
            "SELECT subject_id, wrapped_key FROM data_keys WHERE subject_id = ANY($1)",
            &[(&distinct, Type::UUID_ARRAY)],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Decodes rows into recorded events: upcast, then personal fields decrypted with their
/// subject's key, or replaced by a marker when the key was destroyed.
async fn decode_rows(
    client: &Client,
    keys: &KeyRing,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    decode_rows_with(client, keys, rows, &mut HashMap::new()).await
}

/// Like [`decode_rows`], using and adding to `opened`: keys already opened in the same
/// transaction are not fetched again.
async fn decode_rows_with(
    client: &Client,
    keys: &KeyRing,
    rows: Vec<tokio_postgres::Row>,
    opened: &mut HashMap<Uuid, Arc<DataKey>>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut subjects = Vec::with_capacity(rows.len());
    for row in &rows {
        let metadata: EventMetadata = serde_json::from_value(row.get(9))
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?;
        subjects.push(metadata.data_subject);
    }
    let missing: Vec<Uuid> = subjects
        .iter()
        .flatten()
        .filter(|subject| !opened.contains_key(subject))
        .copied()
        .collect();
    for (subject, wrapped) in fetch_wrapped_keys(client, &missing).await? {
        opened.insert(subject, Arc::new(keys.unwrap(subject, &wrapped)?));
    }
    rows.into_iter()
        .zip(subjects)
        .map(|(row, subject)| decode_row(row, subject.map(|s| opened.get(&s).map(|k| &**k))))
        .collect()
}

/// Decodes one row: upcast, then, when `key` is given (`Some(None)`: the subject's key is
/// gone), personal fields decrypted or marked erased.
fn decode_row(
    row: tokio_postgres::Row,
    key: Option<Option<&DataKey>>,
) -> Result<RecordedEvent, StoreError> {
    let event_id: Uuid = row.get(1);
    let event_type: String = row.get(6);
    let stored_version: i32 = row.get(7);
    let metadata: EventMetadata = serde_json::from_value(row.get(9))
        .map_err(|e| StoreError::Corrupt(format!("metadata of event {event_id}: {e}")))?;
    let (schema_version, mut data) = upcast(&event_type, stored_version, row.get(8))?;
    if let Some(key) = key {
        decrypt_fields(key, event_id, &mut data)?;
    }
    Ok(RecordedEvent {
        position: row.get(0),
        transaction_id: row.get(11),
        event_id,
        tenant_id: row.get(2),
        aggregate_type: row.get(3),
        aggregate_id: row.get(4),
        sequence: row.get(5),
        event_type,
        schema_version,
        data,
        metadata,
        occurred_at: row.get(10),
    })
}

fn event_data(event: &DomainEvent) -> Result<Value, StoreError> {
    let tagged = match event {
        DomainEvent::Tenant { event, .. } => serde_json::to_value(event),
        DomainEvent::User { event, .. } => serde_json::to_value(event),
        DomainEvent::Session { event, .. } => serde_json::to_value(event),
    }
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match tagged {
        Value::Object(mut object) => Ok(object
            .remove("data")
            .unwrap_or(Value::Object(Default::default()))),
        _ => Err(StoreError::Corrupt(
            "an event did not serialise to an object".into(),
        )),
    }
}

fn field_context(event_id: Uuid, field: &str) -> Vec<u8> {
    [event_id.as_bytes().as_slice(), b"/", field.as_bytes()].concat()
}

fn has_personal_values(data: &Value, fields: &[&str]) -> bool {
    fields
        .iter()
        .any(|field| data.get(field).is_some_and(|value| !value.is_null()))
}

fn encrypt_fields(
    key: &DataKey,
    event_id: Uuid,
    fields: &[&str],
    data: &mut Value,
) -> Result<(), StoreError> {
    let Value::Object(object) = data else {
        return Ok(());
    };
    for field in fields {
        if let Some(value) = object.get_mut(*field) {
            if value.is_null() {
                continue;
            }
            let plaintext =
                serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            *value = Value::String(key.encrypt(&field_context(event_id, field), &plaintext)?);
        }
    }
    Ok(())
}

fn decrypt_fields(
    key: Option<&DataKey>,
    event_id: Uuid,
    data: &mut Value,
) -> Result<(), StoreError> {
    let Value::Object(object) = data else {
        return Ok(());
    };
    for (field, value) in object.iter_mut() {
        let Value::String(text) = value else { continue };
        if !text.starts_with(ENCRYPTED_PREFIX) {
            continue;
        }
        *value = match key {
            Some(key) => {
                let plaintext = key.decrypt(&field_context(event_id, field), text)?;
                serde_json::from_slice(&plaintext).map_err(|e| {
                    StoreError::Corrupt(format!("field {field} of event {event_id}: {e}"))
                })?
            }
            None => Value::String(ERASED.to_owned()),
        };
    }
    Ok(())
}
