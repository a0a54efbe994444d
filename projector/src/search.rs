//! The search index: users by name and email, per tenant, in a Tantivy index on local disk.
//!
//! One writer (the `search` projection in `projector run`) applies the event store in
//! publication order and commits with its checkpoint in the commit's payload, so the index
//! and its progress can never disagree. Readers (the query API) open the same directory.
//! Every query carries a mandatory tenant term. See docs/adr/0007-search-index.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::{DomainEvent, UserEvent};
use infra::crypto::KeyRing;
use infra::store::{ReadRange, read_in_order};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term, doc};
use tokio::sync::watch;
use uuid::Uuid;

use crate::runtime::Pair;

/// The index's fields.
#[derive(Clone)]
pub struct SearchFields {
    pub kind: Field,
    pub tenant_id: Field,
    pub doc_id: Field,
    pub name: Field,
    pub email: Field,
    pub role: Field,
    pub status: Field,
    pub created: Field,
    pub event_type: Field,
    pub event_type_text: Field,
    pub summary: Field,
    pub subject_id: Field,
    pub actor_id: Field,
    pub occurred: Field,
    pub position: Field,
}

fn schema() -> (Schema, SearchFields) {
    let mut builder = Schema::builder();
    let fields = SearchFields {
        kind: builder.add_text_field("kind", STRING),
        tenant_id: builder.add_text_field("tenant_id", STRING | STORED),
        doc_id: builder.add_text_field("doc_id", STRING | STORED),
        name: builder.add_text_field("name", TEXT | STORED),
        email: builder.add_text_field("email", TEXT | STORED),
        role: builder.add_text_field("role", STRING | STORED),
        status: builder.add_text_field("status", STRING | STORED),
        created: builder.add_i64_field("created", INDEXED | FAST | STORED),
        event_type: builder.add_text_field("event_type", STRING),
        event_type_text: builder.add_text_field("event_type_text", TEXT),
        summary: builder.add_text_field("summary", TEXT),
        subject_id: builder.add_text_field("subject_id", STRING),
        actor_id: builder.add_text_field("actor_id", STRING),
        occurred: builder.add_i64_field("occurred", INDEXED | FAST),
        position: builder.add_i64_field("position", INDEXED | FAST | STORED),
    };
    (builder.build(), fields)
}

/// The generation readers should use: `SEARCH_INDEX_DIR/CURRENT` names it (1 when absent).
pub fn current_generation(root: &Path) -> u64 {
    std::fs::read_to_string(root.join("CURRENT"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1)
}

/// The directory of one generation of the index.
pub fn generation_dir(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("generation-{generation}"))
}

/// Points readers at `generation` (an atomic rename).
fn set_current_generation(root: &Path, generation: u64) -> std::io::Result<()> {
    let temporary = root.join("CURRENT.tmp");
    std::fs::write(&temporary, generation.to_string())?;
    std::fs::rename(temporary, root.join("CURRENT"))
}

/// Opens the index in `dir`, creating it when absent.
pub fn open(dir: &Path) -> tantivy::Result<(Index, SearchFields)> {
    std::fs::create_dir_all(dir)?;
    let (schema, fields) = schema();
    let directory =
        MmapDirectory::open(dir).map_err(|e| tantivy::TantivyError::SystemError(e.to_string()))?;
    Ok((Index::open_or_create(directory, schema)?, fields))
}

/// The last event the committed index reflects.
pub fn checkpoint(index: &Index) -> tantivy::Result<Pair> {
    let payload = index.load_metas()?.payload;
    Ok(payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<(i64, i64)>(p).ok())
        .unwrap_or((0, 0)))
}

/// A user as the index holds them.
#[derive(Debug, Clone, Default)]
struct UserDoc {
    tenant_id: Uuid,
    name: String,
    email: String,
    role: String,
    status: String,
    created: i64,
}

/// An open generation of the index with its one writer.
pub struct Writing {
    index: Index,
    fields: SearchFields,
    writer: IndexWriter,
    reader: IndexReader,
}

pub struct SearchProjection {
    pub pool: Pool,
    pub keys: Arc<KeyRing>,
    pub dir: PathBuf,
}

/// Events read (and committed) at most at once.
const SEARCH_PAGE: i64 = 2000;
/// Once caught up, commits are at least this far apart.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

impl SearchProjection {
    /// Applies the event store to the index until `shutdown`, committing each batch with
    /// its checkpoint; new documents are searchable within a second.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        tracing::info!(dir = %self.dir.display(), "search projection starting");
        std::fs::create_dir_all(&self.dir)?;
        let mut generation = current_generation(&self.dir);
        if !self.dir.join("CURRENT").exists() {
            set_current_generation(&self.dir, generation)?;
        }
        let mut live = match self.open_writer(generation, &mut shutdown).await {
            Ok(Some(live)) => live,
            Ok(None) => return Ok(()),
            Err(error) => {
                // An index this build cannot open (an older schema): index again into a new
                // generation and point readers at it.
                tracing::warn!(
                    error = format!("{error:#}"),
                    generation,
                    "the search index is outdated; building a new generation"
                );
                generation += 1;
                let _ = std::fs::remove_dir_all(generation_dir(&self.dir, generation));
                let Some(live) = self.open_writer(generation, &mut shutdown).await? else {
                    return Ok(());
                };
                set_current_generation(&self.dir, generation)?;
                live
            }
        };
        // A crash between the index's commit and the copy of its checkpoint below left the
        // copy behind; with no new events it stayed behind, and an idle projector reported a
        // lag that was not there (the index itself was whole).
        self.mirror_index_checkpoint(&live.index).await?;
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let started = tokio::time::Instant::now();
            let step = async {
                if let Some(request) = self.pending_rebuild().await? {
                    let next = generation + 1;
                    tracing::info!(
                        generation = next,
                        "rebuilding the search index beside the live one"
                    );
                    let Some(mut rebuilt) = self.open_writer(next, &mut shutdown.clone()).await?
                    else {
                        return Ok(0);
                    };
                    let mut events = 0;
                    loop {
                        let applied = self.apply_next(&mut rebuilt, false).await?;
                        if applied == 0 {
                            break;
                        }
                        events += applied;
                    }
                    set_current_generation(&self.dir, next)?;
                    let previous = std::mem::replace(&mut live, rebuilt);
                    drop(previous);
                    // Readers may still hold the previous generation open; older ones go.
                    if generation > 1 {
                        let _ = std::fs::remove_dir_all(generation_dir(&self.dir, generation - 1));
                    }
                    generation = next;
                    let client = self.pool.get().await?;
                    client
                        .execute(
                            "UPDATE search_rebuilds SET finished_at = now(), generation = $2, events = $3 WHERE id <= $1 AND finished_at IS NULL",
                            &[&request, &(next as i64), &(events as i64)],
                        )
                        .await?;
                    self.mirror_index_checkpoint(&live.index).await?;
                    tracing::info!(generation, events, "switched to the rebuilt search index");
                    return Ok(events);
                }
                self.apply_next(&mut live, true).await
            };
            match step.await {
                Ok(applied) if applied >= SEARCH_PAGE as usize => failures = 0,
                Ok(applied) if applied > 0 => {
                    // Caught up: let the next events gather until the interval since this
                    // batch began is over. Each commit makes a segment that merging must pay
                    // for again; a few commits a second keep that cost low, new documents
                    // searchable well within a second, and the pace of the writes (the
                    // pause shrinks as a batch takes longer).
                    failures = 0;
                    tokio::select! {
                        _ = tokio::time::sleep_until(started + COMMIT_INTERVAL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(_) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = format!("{error:#}"), "indexing failed; retrying");
                    live.writer.rollback()?;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis((100u64 << failures.min(6)).min(5_000))) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies the index's checkpoint (its commit payload, the truth) to where `projector
    /// status`, `/v1/projections` and the lag metrics read it, when the copy is behind.
    async fn mirror_index_checkpoint(&self, index: &Index) -> anyhow::Result<()> {
        let (transaction_id, position) = checkpoint(index)?;
        if position == 0 {
            return Ok(());
        }
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO projection_checkpoints (projection, last_transaction_id, last_position, events_applied)
                 VALUES ('search', $1, $2, 0)
                 ON CONFLICT (projection) DO UPDATE SET last_transaction_id = $1, last_position = $2, updated_at = now()
                  WHERE (projection_checkpoints.last_transaction_id, projection_checkpoints.last_position) < ($1, $2)",
                &[&transaction_id, &position],
            )
            .await?;
        metrics::gauge!("eventra_projection_position", "projection" => "search")
            .set(position as f64);
        Ok(())
    }

    async fn pending_rebuild(&self) -> anyhow::Result<Option<i64>> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt(
                "SELECT max(id) FROM search_rebuilds WHERE finished_at IS NULL",
                &[],
            )
            .await?
            .and_then(|row| row.get::<_, Option<i64>>(0)))
    }

    /// Opens one generation with its writer, waiting for the writer lock (a previous owner,
    /// such as a crashed task, may still hold it for a moment). None when shutting down.
    async fn open_writer(
        &self,
        generation: u64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Writing>> {
        let dir = generation_dir(&self.dir, generation);
        // Tantivy blocks on file locks: keep that off the async threads, where the previous
        // owner of the lock may need to run to let it go.
        let opened_dir = dir.clone();
        let (index, fields) = tokio::task::spawn_blocking(move || open(&opened_dir)).await??;
        let mut waited = 0u32;
        let writer: IndexWriter = loop {
            let candidate = index.clone();
            match tokio::task::spawn_blocking(move || candidate.writer(50_000_000)).await? {
                Ok(writer) => break writer,
                Err(tantivy::TantivyError::LockFailure(..)) => {
                    waited += 1;
                    if waited % 50 == 1 {
                        tracing::info!(dir = %dir.display(), "waiting for the search index writer lock");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shutdown.changed() => return Ok(None),
                    }
                }
                Err(error) => return Err(error.into()),
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Some(Writing {
            index,
            fields,
            writer,
            reader,
        }))
    }

    /// Indexes the next page of events after the index's checkpoint; returns how many.
    async fn apply_next(&self, target: &mut Writing, mirror: bool) -> anyhow::Result<usize> {
        let Writing {
            index,
            fields,
            writer,
            reader,
        } = target;
        let after = checkpoint(index)?;
        let client = self.pool.get().await?;
        let events = read_in_order(
            &client,
            &self.keys,
            ReadRange {
                after,
                limit: SEARCH_PAGE,
                ..Default::default()
            },
            true,
        )
        .await?;
        let Some(last) = events.last() else {
            return Ok(0);
        };
        let searcher = reader.searcher();
        let mut pending: std::collections::HashMap<Uuid, Option<UserDoc>> =
            std::collections::HashMap::new();
        for event in &events {
            let Ok(domain) = event.to_domain() else {
                continue; // Undecodable: the Postgres projections dead-letter it.
            };
            // Every event is an audit document: type, summary (never personal data), who.
            let (subject, summary) = crate::projections::summary(&domain);
            writer.add_document(doc!(
                fields.kind => "audit",
                fields.tenant_id => event.tenant_id.to_string(),
                fields.doc_id => event.event_id.to_string(),
                fields.event_type => event.event_type.clone(),
                fields.event_type_text => event.event_type.replace(['.', '_'], " "),
                fields.summary => summary,
                fields.subject_id => subject.map(|s| s.to_string()).unwrap_or_default(),
                fields.actor_id => event.metadata.actor_id.map(|a| a.to_string()).unwrap_or_default(),
                fields.occurred => event.occurred_at.timestamp_micros(),
                fields.position => event.position,
            ))?;
            let DomainEvent::User {
                user_id,
                event: user_event,
            } = domain
            else {
                continue;
            };
            let current = match pending.get(&user_id) {
                Some(doc) => doc.clone(),
                None => load_user(&searcher, fields, user_id)?,
            };
            let next = match (&user_event, current) {
                (
                    UserEvent::Created {
                        tenant_id,
                        email,
                        display_name,
                        ..
                    },
                    _,
                ) => Some(UserDoc {
                    tenant_id: *tenant_id,
                    name: display_name.clone(),
                    email: email.clone(),
                    role: String::new(),
                    status: "active".into(),
                    created: event.occurred_at.timestamp_micros(),
                }),
                (UserEvent::Deleted { .. }, _) => None,
                (_, None) => continue,
                (other, Some(mut doc)) => {
                    match other {
                        UserEvent::MemberJoined { role, .. } => doc.role = role.as_str().into(),
                        UserEvent::MemberRoleChanged { new_role, .. } => {
                            doc.role = new_role.as_str().into()
                        }
                        UserEvent::ProfileUpdated {
                            display_name: Some(name),
                            ..
                        } => doc.name.clone_from(name),
                        UserEvent::Deactivated { .. } => doc.status = "deactivated".into(),
                        UserEvent::Reactivated { .. } => doc.status = "active".into(),
                        _ => continue,
                    }
                    Some(doc)
                }
            };
            writer.delete_term(Term::from_field_text(fields.doc_id, &user_id.to_string()));
            if let Some(doc) = &next {
                writer.add_document(doc!(
                    fields.kind => "user",
                    fields.tenant_id => doc.tenant_id.to_string(),
                    fields.doc_id => user_id.to_string(),
                    fields.name => doc.name.clone(),
                    fields.email => doc.email.clone(),
                    fields.role => doc.role.clone(),
                    fields.status => doc.status.clone(),
                    fields.created => doc.created,
                ))?;
            }
            pending.insert(user_id, next);
        }
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&serde_json::to_string(&last.order())?);
        commit.commit()?;
        reader.reload()?;
        // Mirror the progress where `projector status` and `/v1/projections` look; the
        // commit payload above stays the truth.
        if !mirror {
            return Ok(events.len());
        }
        client
            .execute(
                "INSERT INTO projection_checkpoints (projection, last_transaction_id, last_position, events_applied, last_event_at)
                 VALUES ('search', $1, $2, $3, $4)
                 ON CONFLICT (projection) DO UPDATE SET last_transaction_id = $1, last_position = $2,
                     events_applied = projection_checkpoints.events_applied + $3, last_event_at = $4, updated_at = now()",
                &[&last.transaction_id, &last.position, &(events.len() as i64), &last.occurred_at],
            )
            .await?;
        metrics::gauge!("eventra_projection_position", "projection" => "search")
            .set(last.position as f64);
        Ok(events.len())
    }
}

fn load_user(
    searcher: &tantivy::Searcher,
    fields: &SearchFields,
    user_id: Uuid,
) -> anyhow::Result<Option<UserDoc>> {
    let query = TermQuery::new(
        Term::from_field_text(fields.doc_id, &user_id.to_string()),
        IndexRecordOption::Basic,
    );
    let found = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
    let Some((_, address)) = found.first() else {
        return Ok(None);
    };
    let doc: TantivyDocument = searcher.doc(*address)?;
    let text = |field: Field| {
        doc.get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Some(UserDoc {
        tenant_id: Uuid::try_parse(&text(fields.tenant_id)).unwrap_or_default(),
        name: text(fields.name),
        email: text(fields.email),
        role: text(fields.role),
        status: text(fields.status),
        created: doc
            .get_first(fields.created)
            .and_then(|v| v.as_i64())
            .unwrap_or_default(),
    }))
}

/// One clause per word of `q` (at most eight): the word must match one of `fields` as a
/// prefix, or, from four letters on, with one typo.
fn words(q: &str, fields: [Field; 2]) -> Vec<(Occur, Box<dyn Query>)> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .take(8)
        .map(|word| {
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for field in fields {
                let term = Term::from_field_text(field, &word);
                alternatives.push((
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new_prefix(term.clone(), 0, true)),
                ));
                if word.chars().count() >= 4 {
                    alternatives
                        .push((Occur::Should, Box::new(FuzzyTermQuery::new(term, 1, true))));
                }
            }
            (
                Occur::Must,
                Box::new(BooleanQuery::new(alternatives)) as Box<dyn Query>,
            )
        })
        .collect()
}

/// What a users search asks for.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    pub tenant_id: Uuid,
    pub q: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    /// Continue after this (created at in microseconds, user id).
    pub after: Option<(i64, Uuid)>,
    pub limit: usize,
}

/// The ids of the matching users in creation order, each with its creation time.
pub fn search_users(
    reader: &IndexReader,
    fields: &SearchFields,
    search: &UserSearch,
) -> tantivy::Result<Vec<(i64, Uuid)>> {
    let term = |field: Field, value: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    };
    // The tenant is a mandatory term of every query: isolation happens inside the index.
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Must, term(fields.kind, "user")),
        (
            Occur::Must,
            term(fields.tenant_id, &search.tenant_id.to_string()),
        ),
    ];
    if let Some(role) = &search.role {
        clauses.push((Occur::Must, term(fields.role, role)));
    }
    if let Some(status) = &search.status {
        clauses.push((Occur::Must, term(fields.status, status)));
    }
    if let Some(q) = &search.q {
        clauses.extend(words(q, [fields.name, fields.email]));
    }
    if let Some((created, _)) = search.after {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                std::ops::Bound::Included(Term::from_field_i64(fields.created, created)),
                std::ops::Bound::Unbounded,
            )),
        ));
    }
    let query = BooleanQuery::new(clauses);
    let searcher = reader.searcher();
    // One more than the page (to know whether there is a next one); after a cursor, enough
    // more to skip the ties at the cursor's exact time.
    let wanted = search.limit + if search.after.is_some() { 64 } else { 1 };
    let hits = searcher.search(
        &query,
        &TopDocs::with_limit(wanted).order_by_fast_field::<i64>("created", Order::Asc),
    )?;
    let mut found = Vec::with_capacity(hits.len());
    for (created, address) in hits {
        let doc: TantivyDocument = searcher.doc(address)?;
        let Some(user_id) = doc
            .get_first(fields.doc_id)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::try_parse(v).ok())
        else {
            continue;
        };
        let created = created.unwrap_or_default();
        if let Some((after_created, after_id)) = search.after
            && (created, user_id) <= (after_created, after_id)
        {
            continue;
        }
        found.push((created, user_id));
        if found.len() > search.limit {
            break;
        }
    }
    Ok(found)
}

/// When the index was last committed at `pair` or later.
pub fn reached(index: &Index, pair: Pair) -> bool {
    checkpoint(index).is_ok_and(|c| c >= pair)
}

pub fn micros_to_time(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(micros)
}

/// Asks the running projector to rebuild the search index beside the live one, and waits
/// until it has switched; returns the new generation and the events indexed.
pub async fn request_rebuild(pool: &Pool, timeout: Duration) -> anyhow::Result<(i64, i64)> {
    let client = pool.get().await?;
    let id: i64 = client
        .query_one(
            "INSERT INTO search_rebuilds DEFAULT VALUES RETURNING id",
            &[],
        )
        .await?
        .get(0);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let row = client
            .query_one("SELECT finished_at IS NOT NULL, generation, events FROM search_rebuilds WHERE id = $1", &[&id])
            .await?;
        if row.get::<_, bool>(0) {
            return Ok((
                row.get::<_, Option<i64>>(1).unwrap_or(0),
                row.get::<_, Option<i64>>(2).unwrap_or(0),
            ));
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the rebuild was requested (request {id}) but no running projector has done it yet; \
                 it happens when `projector run` is running"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What an audit search asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    pub tenant_id: Uuid,
    pub event_type: Option<String>,
    /// The actor or the subject.
    pub user_id: Option<Uuid>,
    pub from_micros: Option<i64>,
    pub to_micros: Option<i64>,
    pub q: Option<String>,
    /// Only events with a lower position (the cursor).
    pub before_position: Option<i64>,
    pub limit: usize,
}

/// The event ids of matching audit documents, newest first, with their positions.
pub fn search_audit(
    reader: &IndexReader,
    fields: &SearchFields,
    search: &AuditSearch,
) -> tantivy::Result<Vec<(i64, Uuid)>> {
    let term = |field: Field, value: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Must, term(fields.kind, "audit")),
        (
            Occur::Must,
            term(fields.tenant_id, &search.tenant_id.to_string()),
        ),
    ];
    if let Some(event_type) = &search.event_type {
        clauses.push((Occur::Must, term(fields.event_type, event_type)));
    }
    if let Some(user_id) = search.user_id {
        let id = user_id.to_string();
        clauses.push((
            Occur::Must,
            Box::new(BooleanQuery::new(vec![
                (Occur::Should, term(fields.subject_id, &id)),
                (Occur::Should, term(fields.actor_id, &id)),
            ])),
        ));
    }
    let bound = |value: Option<i64>, field: Field, inclusive: bool| match value {
        Some(v) if inclusive => std::ops::Bound::Included(Term::from_field_i64(field, v)),
        Some(v) => std::ops::Bound::Excluded(Term::from_field_i64(field, v)),
        None => std::ops::Bound::Unbounded,
    };
    if search.from_micros.is_some() || search.to_micros.is_some() {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                bound(search.from_micros, fields.occurred, true),
                bound(search.to_micros, fields.occurred, true),
            )),
        ));
    }
    if search.before_position.is_some() {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                std::ops::Bound::Unbounded,
                bound(search.before_position, fields.position, false),
            )),
        ));
    }
    if let Some(q) = &search.q {
        clauses.extend(words(q, [fields.summary, fields.event_type_text]));
    }
    let searcher = reader.searcher();
    let hits = searcher.search(
        &BooleanQuery::new(clauses),
        &TopDocs::with_limit(search.limit + 1).order_by_fast_field::<i64>("position", Order::Desc),
    )?;
    let mut found = Vec::with_capacity(hits.len());
    for (position, address) in hits {
        let doc: TantivyDocument = searcher.doc(address)?;
        if let Some(event_id) = doc
            .get_first(fields.doc_id)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::try_parse(v).ok())
        {
            found.push((position.unwrap_or_default(), event_id));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_document_is_found_by_tenant_and_type_only_in_its_tenant() {
        let dir =
            std::env::temp_dir().join(format!("eventra-search-unit-{}", Uuid::new_v4().simple()));
        let (index, fields) = open(&dir).expect("index");
        let mut writer: IndexWriter = index.writer(15_000_000).expect("writer");
        let tenant = Uuid::new_v4();
        for (tenant_id, position) in [(tenant, 1i64), (Uuid::new_v4(), 2)] {
            writer
                .add_document(doc!(
                    fields.kind => "audit",
                    fields.tenant_id => tenant_id.to_string(),
                    fields.doc_id => Uuid::new_v4().to_string(),
                    fields.event_type => "user.created",
                    fields.event_type_text => "user created",
                    fields.summary => "user signed up",
                    fields.subject_id => "",
                    fields.actor_id => "",
                    fields.occurred => 5i64,
                    fields.position => position,
                ))
                .expect("add");
        }
        writer.commit().expect("commit");
        let reader = index.reader().expect("reader");
        let search = |q: Option<&str>, event_type: Option<&str>| {
            search_audit(
                &reader,
                &fields,
                &AuditSearch {
                    tenant_id: tenant,
                    event_type: event_type.map(str::to_owned),
                    q: q.map(str::to_owned),
                    limit: 10,
                    ..Default::default()
                },
            )
            .expect("search")
        };
        assert_eq!(search(None, None).len(), 1);
        assert_eq!(search(None, Some("user.created")).len(), 1);
        assert_eq!(search(Some("signed"), None).len(), 1);
        assert_eq!(search(Some("sgned"), None).len(), 1, "a typo still matches");
        assert_eq!(search(None, Some("user.deleted")).len(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
