//! Appends: what a decision asks to write ([`Changes`]), how an event becomes a row (sealed
//! personal fields, serialised metadata), and the insert of a command's rows in its own
//! transaction. The grouped writer inserts the same rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use domain::DomainEvent;
use futures_util::TryStreamExt as _;
use serde_json::Value;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::error::StoreError;
use crate::kept::PendingKeep;
use crate::reader::Reader;
use crate::recorded::EventMetadata;
use crate::sealing::{has_personal_values, seal_fields};
use crate::stream::{AppendedEvent, ExpectedVersion, Loaded};

/// What one command appends: events of one tenant, each stream at the version its decision
/// saw, at one time, by one actor.
pub struct Changes {
    pub tenant_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// Who acted (the metadata's `actor_id`).
    pub actor_id: Option<Uuid>,
    pub(crate) expected: Vec<ExpectedVersion>,
    pub(crate) events: Vec<DomainEvent>,
    pub(crate) keep: Vec<PendingKeep>,
    /// Whether the states after these changes are kept for the next commands.
    keeping: bool,
}

impl Changes {
    pub fn new(tenant_id: Uuid, occurred_at: DateTime<Utc>) -> Self {
        Changes {
            tenant_id,
            occurred_at,
            actor_id: None,
            expected: Vec::new(),
            events: Vec::new(),
            keep: Vec::new(),
            keeping: true,
        }
    }

    /// Events given as they are, with their streams' expected versions (tools and tests
    /// that write what no decision would).
    pub fn of_events(
        tenant_id: Uuid,
        occurred_at: DateTime<Utc>,
        expected: &[ExpectedVersion],
        events: Vec<DomainEvent>,
    ) -> Self {
        Changes {
            expected: expected.to_vec(),
            events,
            ..Changes::new(tenant_id, occurred_at)
        }
    }

    /// Names who acted.
    pub fn by(mut self, actor_id: Uuid) -> Self {
        self.actor_id = Some(actor_id);
        self
    }

    /// Keeps no state after these changes: a bulk write (an import) touches streams the next
    /// commands are unlikely to, and keeping them would only push out the ones they touch.
    pub fn without_keeping(mut self) -> Self {
        self.keeping = false;
        self
    }

    /// [`Changes::append`] as a builder: the changes with `events` for `stream` added.
    pub fn appending<A: Aggregate>(mut self, stream: &Loaded<A>, events: Vec<A::Event>) -> Self {
        self.append(stream, events);
        self
    }

    /// [`Changes::create`] as a builder.
    pub fn creating<A: Aggregate>(mut self, id: Uuid, events: Vec<A::Event>) -> Self {
        self.create::<A>(id, events);
        self
    }

    /// A member leaving the tenant leaves `teams` (the ones they are in) in the same
    /// transaction.
    pub fn leave_teams(&mut self, teams: &[Loaded<domain::Team>], user_id: Uuid, actor: Uuid) {
        let states: Vec<domain::Team> = teams.iter().map(|team| team.state.clone()).collect();
        for (team_id, events) in domain::team::departures(&states, user_id, actor) {
            if let Some(team) = teams.iter().find(|team| team.id == team_id) {
                self.append(team, events);
            }
        }
    }

    /// Appends `events` to a loaded stream, expected at the version it was loaded at. A
    /// kept aggregate's state after these events is kept once they commit, so the next
    /// command on the stream reads only what others append after them.
    pub fn append<A: Aggregate>(&mut self, stream: &Loaded<A>, events: Vec<A::Event>) {
        if events.is_empty() {
            return;
        }
        self.expected.push(ExpectedVersion {
            aggregate_id: stream.id,
            version: stream.version,
        });
        if A::KEPT && self.keeping {
            let mut after = stream.clone();
            for event in &events {
                after.state.apply(event, self.occurred_at);
            }
            self.keep.push(PendingKeep {
                aggregate_id: stream.id,
                keep: Box::new(move |kept, version, last_position| {
                    if let Some(cache) = A::cache(kept) {
                        cache.keep(Loaded {
                            version,
                            last_position,
                            ..after
                        });
                    }
                }),
            });
        }
        self.events.extend(A::wrap(stream.id, events));
    }

    /// Appends the first events of a new stream.
    pub fn create<A: Aggregate>(&mut self, id: Uuid, events: Vec<A::Event>) {
        self.append(&Loaded::<A>::new(id), events);
    }

    /// Whether these changes append to the stream `aggregate_id` expecting `version`.
    pub fn appends_at(&self, aggregate_id: Uuid, version: i64) -> bool {
        self.expected
            .iter()
            .any(|expected| expected.aggregate_id == aggregate_id && expected.version == version)
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn events(&self) -> &[DomainEvent] {
        &self.events
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

/// Inserts one event and answers its position.
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, sequence, type,
                         version, data, metadata, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     RETURNING position";

impl EventRow {
    /// Inserts the row with `statement` ([`INSERT_EVENT`]) and answers its position. The
    /// request is sent on the first poll, as [`infra::db::pipelined`] needs.
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

/// The rows of `changes`: each stream's events take the sequences after its expected
/// version, personal fields sealed with their subject's key (fetched once per unit).
pub(crate) async fn rows(
    reader: &Reader<'_>,
    changes: &Changes,
    metadata: &EventMetadata,
) -> Result<Vec<EventRow>, StoreError> {
    let mut versions: HashMap<Uuid, i64> = changes
        .expected
        .iter()
        .map(|e| (e.aggregate_id, e.version))
        .collect();
    let mut rows = Vec::with_capacity(changes.events.len());
    for event in &changes.events {
        let event_id = Uuid::now_v7();
        let aggregate_id = event.aggregate_id();
        let version = versions.entry(aggregate_id).or_insert(0);
        *version += 1;
        let mut data = event_data(event)?;
        let mut event_metadata = metadata.clone();
        if let Some(subject) = event.data_subject() {
            // The key is needed only when there is something personal to seal.
            if has_personal_values(&data, event.personal_fields()) {
                let key = reader.data_key(changes.tenant_id, subject).await?;
                seal_fields(&key, event_id, event.personal_fields(), &mut data)?;
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
    Ok(rows)
}

/// Inserts many rows with one statement (from this many on): a batch pays the statement's
/// start, its constraint checks and the append trigger once instead of once per event.
pub(crate) const MULTI_ROW_FROM: usize = 16;

/// Inserts the rows given as arrays, in their order (positions are taken in that order), and
/// answers each row's event id with its position.
pub(crate) const INSERT_EVENTS: &str =
    "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, sequence, type,
                         version, data, metadata, occurred_at)
     SELECT e.event_id, $1, e.aggregate_type, e.aggregate_id, e.sequence, e.type, e.version,
            e.data, e.metadata, $2
       FROM unnest($3::uuid[], $4::text[], $5::uuid[], $6::bigint[], $7::text[], $8::int[],
                   $9::jsonb[], $10::jsonb[])
            WITH ORDINALITY AS e(event_id, aggregate_type, aggregate_id, sequence, type, version,
                                 data, metadata, n)
      ORDER BY e.n
     RETURNING event_id, position";

/// Inserts a command's rows in its transaction, all at once (pipelined, or for many rows one
/// statement), then updates the authentication state. A stream that moved on makes this a
/// [`StoreError::Conflict`].
pub(crate) async fn insert_rows(
    client: &Object,
    changes: &Changes,
    rows: &[EventRow],
) -> Result<Vec<AppendedEvent>, StoreError> {
    let positions = if rows.len() >= MULTI_ROW_FROM {
        insert_many(client, changes, rows).await?
    } else {
        let statement = client.prepare_cached(INSERT_EVENT).await?;
        let inserts = rows
            .iter()
            .map(|row| {
                Box::pin(row.insert(client, &statement, changes.tenant_id, changes.occurred_at))
            })
            .collect();
        let mut positions = Vec::with_capacity(rows.len());
        for (position, row) in infra::db::pipelined(inserts).await.into_iter().zip(rows) {
            positions.push(position.map_err(|error| conflict_or(error, row))?);
        }
        positions
    };
    let applied: Vec<infra::auth_state::Appended<'_>> = positions
        .iter()
        .zip(&changes.events)
        .map(|(position, event)| infra::auth_state::Appended {
            tenant_id: changes.tenant_id,
            position: *position,
            event,
            occurred_at: changes.occurred_at,
        })
        .collect();
    infra::auth_state::apply_all(client, applied).await?;
    Ok(rows
        .iter()
        .zip(positions)
        .map(|(row, position)| AppendedEvent {
            event_id: row.event_id,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            position,
        })
        .collect())
}

/// The rows in one statement ([`INSERT_EVENTS`]); their positions in their order.
async fn insert_many(
    client: &Object,
    changes: &Changes,
    rows: &[EventRow],
) -> Result<Vec<i64>, StoreError> {
    let statement = client.prepare_cached(INSERT_EVENTS).await?;
    let event_ids: Vec<Uuid> = rows.iter().map(|row| row.event_id).collect();
    let aggregate_types: Vec<&str> = rows.iter().map(|row| row.aggregate_type).collect();
    let aggregate_ids: Vec<Uuid> = rows.iter().map(|row| row.aggregate_id).collect();
    let sequences: Vec<i64> = rows.iter().map(|row| row.sequence).collect();
    let types: Vec<&str> = rows.iter().map(|row| row.event_type).collect();
    let versions: Vec<i32> = rows.iter().map(|row| row.schema_version).collect();
    let data: Vec<&Value> = rows.iter().map(|row| &row.data).collect();
    let metadata: Vec<&Value> = rows.iter().map(|row| &row.metadata).collect();
    let answer = client
        .query(
            &statement,
            &[
                &changes.tenant_id,
                &changes.occurred_at,
                &event_ids,
                &aggregate_types,
                &aggregate_ids,
                &sequences,
                &types,
                &versions,
                &data,
                &metadata,
            ],
        )
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            // The row named by the violated key, else the first.
            let detail = error
                .as_db_error()
                .and_then(|e| e.detail())
                .unwrap_or_default()
                .to_owned();
            let row = rows
                .iter()
                .find(|row| detail.contains(&row.aggregate_id.to_string()))
                .or(rows.first());
            return Err(match row {
                Some(row) => conflict_or(error, row),
                None => error.into(),
            });
        }
    };
    let by_id: HashMap<Uuid, i64> = answer.iter().map(|row| (row.get(0), row.get(1))).collect();
    rows.iter()
        .map(|row| {
            by_id.get(&row.event_id).copied().ok_or_else(|| {
                StoreError::Corrupt(format!("no position answered for event {}", row.event_id))
            })
        })
        .collect()
}

/// An insert's failure: a unique violation on the stream's sequence is a conflict on the
/// row's stream.
fn conflict_or(error: tokio_postgres::Error, row: &EventRow) -> StoreError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return StoreError::Conflict {
            aggregate_type: row.aggregate_type.to_owned(),
            aggregate_id: row.aggregate_id,
        };
    }
    error.into()
}

/// The event's `data`: its serialised form without the type tag.
fn event_data(event: &DomainEvent) -> Result<Value, StoreError> {
    let tagged = match event {
        DomainEvent::Tenant { event, .. } => serde_json::to_value(event),
        DomainEvent::User { event, .. } => serde_json::to_value(event),
        DomainEvent::Session { event, .. } => serde_json::to_value(event),
        DomainEvent::Team { event, .. } => serde_json::to_value(event),
        DomainEvent::Invitation { event, .. } => serde_json::to_value(event),
        DomainEvent::Import { event, .. } => serde_json::to_value(event),
        DomainEvent::Webhook { event, .. } => serde_json::to_value(event),
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

/// Counts appended events by type (once they have committed).
pub(crate) fn count_appended(event_types: impl IntoIterator<Item = &'static str>) {
    for event_type in event_types {
        metrics::counter!("eventra_events_appended_total", "type" => event_type).increment(1);
    }
}
