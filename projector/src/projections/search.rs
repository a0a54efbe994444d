//! The search index: users by name and email, per tenant, in a Tantivy index on local disk.
//!
//! One writer (the `search` projection in `projector run`) applies the event store in
//! publication order and commits with its checkpoint in the commit's payload, so the index
//! and its progress can never disagree. Readers (the query API) open the same directory.
//! The schema and the queries are `read_models::search`. See docs/adr/0007-search-index.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use domain::{DomainEvent, UserEvent};
use eventstore::Order;
use eventstore::{ReadRange, read_in_order};
use infra::crypto::KeyRing;
use read_models::search::{
    SearchFields, checkpoint, current_generation, generation_dir, open, set_current_generation,
};
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};
use tokio::sync::watch;
use uuid::Uuid;

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
    /// A user was deleted and the segments holding their old documents are not yet
    /// rewritten.
    purge_pending: bool,
}

pub struct SearchProjection {
    pub pool: Pool,
    pub keys: Arc<KeyRing>,
    pub dir: PathBuf,
}

/// Events read (and committed) at most at once.
const SEARCH_PAGE: i64 = 2000;
/// How long a retired generation stays after a rebuild, for reads that began before it.
const RETIRED_GENERATION_GRACE: Duration = Duration::from_secs(10);
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
        // What a rebuild, a schema change or a crash left beside the live generation goes:
        // holding the live generation's writer lock, no other writer is at work.
        match read_models::search::remove_other_generations(&self.dir, generation) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "old search index generations removed"),
            Err(error) => tracing::warn!(%error, "removing old search index generations failed"),
        }
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
                    // Readers follow `CURRENT` at their next query; the previous generation
                    // (with the words of users deleted since) goes once they have.
                    let retired = generation_dir(&self.dir, generation);
                    tokio::spawn(async move {
                        tokio::time::sleep(RETIRED_GENERATION_GRACE).await;
                        if let Err(error) = std::fs::remove_dir_all(&retired) {
                            tracing::warn!(%error, dir = %retired.display(), "removing a retired search index generation failed");
                        }
                    });
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
        let Order {
            transaction_id,
            position,
        } = checkpoint(index)?;
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
            // One indexing thread: each commit makes one segment (two threads made two, and
            // merging them again was a fifth of the projector's time under writes), and the
            // other core serves the rest of the system.
            match tokio::task::spawn_blocking(move || {
                candidate.writer_with_num_threads(1, 50_000_000)
            })
            .await?
            {
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
            purge_pending: false,
        }))
    }

    /// Indexes the next page of events after the index's checkpoint; returns how many.
    async fn apply_next(&self, target: &mut Writing, mirror: bool) -> anyhow::Result<usize> {
        if target.purge_pending {
            target.purge_pending = !purge_deleted(&target.index, &mut target.writer).await;
        }
        let Writing {
            index,
            fields,
            writer,
            reader,
            purge_pending,
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
            let (subject, summary) = crate::projections::audit::summary(&domain);
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
                None => load_user(&searcher, fields, &self.keys, user_id)?,
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
                (UserEvent::Deleted { .. }, _) => {
                    *purge_pending = true;
                    None
                }
                (_, None) => continue,
                (other, Some(mut doc)) => {
                    match other {
                        UserEvent::MemberJoined { role, .. } => {
                            doc.role = role.as_str().into();
                            if doc.status == "removed" {
                                doc.status = "active".into();
                            }
                        }
                        UserEvent::MemberRoleChanged { new_role, .. } => {
                            doc.role = new_role.as_str().into()
                        }
                        UserEvent::ProfileUpdated {
                            display_name: Some(name),
                            ..
                        } => doc.name.clone_from(name),
                        UserEvent::EmailChanged { email, .. } => doc.email.clone_from(email),
                        UserEvent::Deactivated { .. } => doc.status = "deactivated".into(),
                        UserEvent::Reactivated { .. } => doc.status = "active".into(),
                        UserEvent::MemberRemoved { .. } => {
                            doc.status = "removed".into();
                            doc.role = String::new();
                        }
                        UserEvent::DeletionScheduled { .. } if doc.status != "removed" => {
                            doc.status = "deletion_scheduled".into();
                        }
                        UserEvent::DeletionCancelled { status, .. } if doc.status != "removed" => {
                            doc.status = status.as_str().into();
                        }
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
                    fields.sealed => seal(&self.keys, user_id, doc)?,
                ))?;
            }
            pending.insert(user_id, next);
        }
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&serde_json::to_string(&last.order())?);
        commit.commit()?;
        reader.reload()?;
        if *purge_pending {
            *purge_pending = !purge_deleted(index, writer).await;
        }
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

/// What a user document keeps sealed: the name and email its words were indexed from.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Sealed {
    name: String,
    email: String,
}

fn sealed_context(user_id: Uuid) -> Vec<u8> {
    [b"eventra/search/user/v1/".as_slice(), user_id.as_bytes()].concat()
}

fn seal(keys: &KeyRing, user_id: Uuid, doc: &UserDoc) -> anyhow::Result<Vec<u8>> {
    let plain = serde_json::to_vec(&Sealed {
        name: doc.name.clone(),
        email: doc.email.clone(),
    })?;
    Ok(keys.seal_secret(&sealed_context(user_id), &plain)?)
}

/// Rewrites every segment that holds deleted documents and removes the files no longer
/// used, so a deleted user's words and sealed fields leave the disk now rather than at a
/// merge the merge policy may never do. Deletions are rare; other segments are untouched.
/// Whether it succeeded: a segment the merge policy is merging right now makes it fail, and
/// the next batch tries again (indexing goes on meanwhile).
async fn purge_deleted(index: &Index, writer: &mut IndexWriter) -> bool {
    match rewrite_deleted(index, writer).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "purging deleted users from the search index failed; trying again with the next batch"
            );
            false
        }
    }
}

async fn rewrite_deleted(index: &Index, writer: &mut IndexWriter) -> anyhow::Result<()> {
    let segments: Vec<tantivy::index::SegmentId> = index
        .searchable_segment_metas()?
        .into_iter()
        .filter(|meta| meta.has_deletes())
        .map(|meta| meta.id())
        .collect();
    if !segments.is_empty() {
        writer.merge(&segments).await?;
    }
    let collected = writer.garbage_collect_files().await?;
    tracing::info!(
        segments = segments.len(),
        files_removed = collected.deleted_files.len(),
        "deleted users purged from the search index"
    );
    metrics::counter!("eventra_search_purges_total").increment(1);
    Ok(())
}

fn load_user(
    searcher: &tantivy::Searcher,
    fields: &SearchFields,
    keys: &KeyRing,
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
    let sealed = doc
        .get_first(fields.sealed)
        .and_then(|v| v.as_bytes())
        .and_then(|bytes| keys.open_secret(&sealed_context(user_id), bytes).ok())
        .and_then(|plain| serde_json::from_slice::<Sealed>(&plain).ok())
        .unwrap_or_default();
    Ok(Some(UserDoc {
        tenant_id: Uuid::try_parse(&text(fields.tenant_id)).unwrap_or_default(),
        name: sealed.name,
        email: sealed.email,
        role: text(fields.role),
        status: text(fields.status),
        created: doc
            .get_first(fields.created)
            .and_then(|v| v.as_i64())
            .unwrap_or_default(),
    }))
}
