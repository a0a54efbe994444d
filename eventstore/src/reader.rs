//! Reads inside a unit of work: streams folded into states (with the kept states of earlier
//! commands), the membership view of a tenant, reservations, and the data keys that open
//! personal fields.

use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use infra::crypto::{DataKey, KeyRing};
use uuid::Uuid;

use crate::aggregate::{Aggregate, fold_members};
use crate::data_keys::{self, OpenedKeys};
use crate::error::StoreError;
use crate::kept::KeptStates;
use crate::recorded::RecordedEvent;
use crate::rows::{SELECT_EVENTS, decode_rows, decode_rows_with, stream_rows};
use crate::stream::Loaded;

/// What every unit of work carries: the key ring, the process's kept states, and the data
/// keys this unit has opened.
pub(crate) struct Shared {
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) kept: Arc<KeptStates>,
    pub(crate) opened: OpenedKeys,
    /// Whether kept states are taken without reading their streams (ADR 33).
    pub(crate) trust_kept: bool,
    /// The kept states taken so, as `(aggregate, version)`: still to be proven current.
    pub(crate) unverified: std::sync::Mutex<Vec<(Uuid, i64)>>,
}

impl Shared {
    pub(crate) fn new(keys: Arc<KeyRing>, kept: Arc<KeptStates>) -> Self {
        Shared {
            keys,
            kept,
            opened: OpenedKeys::default(),
            trust_kept: false,
            unverified: std::sync::Mutex::default(),
        }
    }
}

/// Reads inside a unit of work: on the unit's transaction, or on pooled connections as
/// they come.
pub struct Reader<'a> {
    pub(crate) source: Source<'a>,
    pub(crate) shared: &'a Shared,
}

pub(crate) enum Source<'a> {
    Transaction(&'a Object),
    Pool(&'a Pool),
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

impl Reader<'_> {
    pub fn keys(&self) -> &KeyRing {
        &self.shared.keys
    }

    async fn connection(&self) -> Result<Connection<'_>, StoreError> {
        Ok(match self.source {
            Source::Transaction(client) => Connection::Borrowed(client),
            Source::Pool(pool) => Connection::Pooled(Box::new(pool.get().await?)),
        })
    }

    /// One whole stream, personal data opened.
    pub async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.load_stream_after(aggregate_type, aggregate_id, 0)
            .await
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
        let mut opened = std::mem::take(&mut *self.shared.opened.lock());
        let events = decode_rows_with(&client, &self.shared.keys, rows, &mut opened).await;
        self.shared.opened.lock().extend(opened);
        events
    }

    /// The aggregate `id`, folded from the state an earlier command of this process kept
    /// (if its type is kept) and the events appended to the stream since. A unit that
    /// trusts kept states (ADR 33) takes a kept one as it is and notes it as unverified:
    /// the executor proves it current by appending at its version, or decides again.
    #[tracing::instrument(skip(self), fields(aggregate_type = A::TYPE))]
    pub async fn load<A: Aggregate>(&self, id: Uuid) -> Result<Loaded<A>, StoreError> {
        let cache = A::cache(&self.shared.kept);
        let mut loaded = cache
            .and_then(|cache| cache.get(id))
            .unwrap_or_else(|| Loaded::new(id));
        if self.shared.trust_kept && loaded.version > 0 {
            self.shared
                .unverified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((id, loaded.version));
            return Ok(loaded);
        }
        let events = self.load_stream_after(A::TYPE, id, loaded.version).await?;
        for recorded in &events {
            if let Some(event) = decode(recorded)?.and_then(A::unwrap) {
                loaded.state.apply(&event, recorded.occurred_at);
            }
            loaded.version = recorded.sequence;
            loaded.last_position = recorded.position;
        }
        if let Some(cache) = cache
            && !events.is_empty()
        {
            cache.keep(loaded.clone());
        }
        Ok(loaded)
    }

    /// The tenant's membership view, folded from the membership events of every user and
    /// team of the tenant. Load it only under the tenant's membership lock.
    #[tracing::instrument(skip(self))]
    pub async fn members(&self, tenant_id: Uuid) -> Result<domain::TenantMembers, StoreError> {
        let client = self.connection().await?;
        load_members(&client, &self.shared.keys, tenant_id).await
    }

    /// The teams the membership view lists `user_id` in, loaded to record their departure.
    pub async fn teams_of(
        &self,
        members: &domain::TenantMembers,
        user_id: Uuid,
    ) -> Result<Vec<Loaded<domain::Team>>, StoreError> {
        let mut teams = Vec::new();
        for team_id in members.teams_of(user_id) {
            teams.push(self.load::<domain::Team>(team_id).await?);
        }
        Ok(teams)
    }

    /// The user's sessions that are open now, by the authentication state (written with the
    /// events that open and end them).
    pub async fn open_sessions_of(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<Loaded<domain::Session>>, StoreError> {
        let rows = self
            .connection()
            .await?
            .query(
                "SELECT session_id FROM auth_sessions
                  WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
                  ORDER BY created_at",
                &[&user_id],
            )
            .await?;
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            sessions.push(self.load::<domain::Session>(row.get(0)).await?);
        }
        Ok(sessions)
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

    /// Who holds each of several values of one kind: the held ones, by value (one query for
    /// a batch).
    pub async fn reservation_owners(
        &self,
        tenant_id: Uuid,
        kind: &str,
        value_hashes: &[Vec<u8>],
    ) -> Result<std::collections::HashMap<Vec<u8>, Uuid>, StoreError> {
        let rows = self
            .connection()
            .await?
            .query(
                "SELECT value_hash, owner_id FROM unique_reservations
                  WHERE tenant_id = $1 AND kind = $2 AND value_hash = ANY($3)",
                &[&tenant_id, &kind, &value_hashes],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The subject's data key, created on first use, opened once per unit.
    pub(crate) async fn data_key(
        &self,
        tenant_id: Uuid,
        subject_id: Uuid,
    ) -> Result<Arc<DataKey>, StoreError> {
        if let Some(key) = self.shared.opened.get(subject_id) {
            return Ok(key);
        }
        let client = self.connection().await?;
        let key = Arc::new(
            data_keys::fetch_or_create(&client, &self.shared.keys, tenant_id, subject_id).await?,
        );
        self.shared
            .opened
            .lock()
            .insert(subject_id, Arc::clone(&key));
        Ok(key)
    }
}

/// The tenant's membership view, folded from the membership events of every user and team
/// of the tenant, as committed now (for a decision, under the tenant's membership lock).
pub async fn load_members(
    client: &tokio_postgres::Client,
    keys: &KeyRing,
    tenant_id: Uuid,
) -> Result<domain::TenantMembers, StoreError> {
    let types: Vec<&str> = domain::TenantMembers::EVENT_TYPES
        .iter()
        .chain(domain::TenantMembers::TEAM_EVENT_TYPES)
        .copied()
        .collect();
    let rows = client
        .query(
            &format!(
                "{SELECT_EVENTS} WHERE tenant_id = $1 AND aggregate_type IN ('user', 'team')
                   AND type = ANY($2)
                 ORDER BY position"
            ),
            &[&tenant_id, &types],
        )
        .await?;
    let events = decode_rows(client, keys, rows).await?;
    let mut decoded = Vec::with_capacity(events.len());
    for recorded in &events {
        decoded.extend(decode(recorded)?);
    }
    Ok(fold_members(tenant_id, decoded))
}

/// A recorded event as a domain event; an event of a type this build cannot decode is
/// corrupt for a command (it cannot decide against it).
fn decode(recorded: &RecordedEvent) -> Result<Option<domain::DomainEvent>, StoreError> {
    recorded
        .to_domain()
        .map(Some)
        .map_err(|error| StoreError::Corrupt(error.to_string()))
}
