//! The search index: users by name and email, and the audit log, per tenant, in a Tantivy
//! index on local disk. The projector's `search` projection is its one writer; the query
//! API reads it. Every query carries a mandatory tenant term. See
//! docs/adr/0007-search-index.md.

mod queries;

use std::path::{Path, PathBuf};

use eventstore::Order;
use tantivy::Index;
use tantivy::directory::MmapDirectory;
use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, TEXT};

pub use queries::{AuditSearch, UserSearch, search_audit, search_users};

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
    /// A user's name and email, sealed (never stored in clear: the index's stored fields
    /// are what a copy of its files gives away); the indexed words are not stored at all.
    pub sealed: Field,
}

pub fn schema() -> (Schema, SearchFields) {
    let mut builder = Schema::builder();
    let fields = SearchFields {
        kind: builder.add_text_field("kind", STRING),
        tenant_id: builder.add_text_field("tenant_id", STRING | STORED),
        doc_id: builder.add_text_field("doc_id", STRING | STORED),
        name: builder.add_text_field("name", TEXT),
        email: builder.add_text_field("email", TEXT),
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
        sealed: builder.add_bytes_field("sealed", STORED),
    };
    (builder.build(), fields)
}

/// `SEARCH_INDEX_DIR`, or `search` under `EVENTRA_DATA_DIR` (default `.data`): where the
/// projector on this host writes the index and the query API reads it.
pub fn configured_dir() -> PathBuf {
    use infra::config::var;
    var("SEARCH_INDEX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(var("EVENTRA_DATA_DIR").unwrap_or_else(|| ".data".into())).join("search")
        })
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
pub fn set_current_generation(root: &Path, generation: u64) -> std::io::Result<()> {
    let temporary = root.join("CURRENT.tmp");
    std::fs::write(&temporary, generation.to_string())?;
    std::fs::rename(temporary, root.join("CURRENT"))
}

/// Removes every generation of the index under `root` but `keep` (what a rebuild or an
/// older build left: a deleted user's words would stay in it).
pub fn remove_other_generations(root: &Path, keep: u64) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(generation) = name
            .to_str()
            .and_then(|n| n.strip_prefix("generation-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if generation != keep && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
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
pub fn checkpoint(index: &Index) -> tantivy::Result<Order> {
    let payload = index.load_metas()?.payload;
    Ok(payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<Order>(p).ok())
        .unwrap_or_default())
}

/// When the index was last committed at `order` or later.
pub fn reached(index: &Index, order: Order) -> bool {
    checkpoint(index).is_ok_and(|c| c >= order)
}

pub fn micros_to_time(micros: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros)
}
