//! The search index as the query API reads it: opened lazily from the directory the
//! projector on this host writes, reloaded on each commit.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api_common::ApiError;
use eventstore::Order;
use read_models::search::{
    AuditSearch, SearchFields, UserSearch, checkpoint, search_audit, search_users,
};
use tantivy::{Index, IndexReader, ReloadPolicy};
use uuid::Uuid;

pub struct SearchService {
    /// `SEARCH_INDEX_DIR`: generations of the index, `CURRENT` naming the live one.
    dir: PathBuf,
    opened: Mutex<Option<(u64, Index, IndexReader, SearchFields)>>,
}

impl SearchService {
    pub fn new(dir: PathBuf) -> Self {
        SearchService {
            dir,
            opened: Mutex::new(None),
        }
    }

    fn open(&self) -> Result<(Index, IndexReader, SearchFields), ApiError> {
        let mut opened = self
            .opened
            .lock()
            .map_err(|_| ApiError::internal(anyhow::anyhow!("search state poisoned")))?;
        // A rebuild switches `CURRENT` to a new generation: follow it.
        let generation = read_models::search::current_generation(&self.dir);
        if let Some((open_generation, index, reader, fields)) = opened.as_ref()
            && *open_generation == generation
        {
            return Ok((index.clone(), reader.clone(), fields.clone()));
        }
        let dir = read_models::search::generation_dir(&self.dir, generation);
        if !dir.join("meta.json").exists() {
            return Err(ApiError::NotCaughtUp(
                "the search index is not built yet (the projector builds it); retry shortly".into(),
            ));
        }
        let (index, fields) =
            read_models::search::open(&dir).map_err(|e| ApiError::Unavailable(e.into()))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(|e| ApiError::Unavailable(e.into()))?;
        *opened = Some((generation, index.clone(), reader.clone(), fields.clone()));
        Ok((index, reader, fields))
    }

    /// Readiness: the live generation opens; its position.
    pub fn probe(&self) -> Result<i64, String> {
        let (index, _, _) = self.open().map_err(|e| e.to_string())?;
        checkpoint(&index)
            .map(|c| c.position)
            .map_err(|e| e.to_string())
    }

    /// Waits (bounded) until the index reflects `target`; returns its position.
    pub async fn reach(&self, target: Option<Order>, timeout: Duration) -> Result<i64, ApiError> {
        let (index, reader, _) = self.open()?;
        let deadline = Instant::now() + timeout;
        loop {
            let current = checkpoint(&index).map_err(|e| ApiError::Unavailable(e.into()))?;
            match target {
                Some(target) if current < target => {
                    if Instant::now() >= deadline {
                        return Err(ApiError::NotCaughtUp(format!(
                            "the search index has not reached position {} yet (it is at {}); retry shortly",
                            target.position, current.position
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                _ => {
                    reader
                        .reload()
                        .map_err(|e| ApiError::Unavailable(e.into()))?;
                    return Ok(current.position);
                }
            }
        }
    }

    /// Matching users, in creation order: (created at in microseconds, user id).
    pub async fn users(&self, search: UserSearch) -> Result<Vec<(i64, Uuid)>, ApiError> {
        let (_, reader, fields) = self.open()?;
        actix_web::web::block(move || search_users(&reader, &fields, &search))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::Unavailable(e.into()))
    }
}

impl SearchService {
    /// Matching audit events, newest first: (position, event id).
    pub async fn audit(&self, search: AuditSearch) -> Result<Vec<(i64, Uuid)>, ApiError> {
        let (_, reader, fields) = self.open()?;
        actix_web::web::block(move || search_audit(&reader, &fields, &search))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::Unavailable(e.into()))
    }
}
