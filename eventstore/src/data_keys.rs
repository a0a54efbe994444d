//! Per-subject data keys: created on first use, wrapped by the master key, fetched once per
//! unit of work, destroyed by erasure.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::ClientWrapper;
use infra::crypto::{CryptoError, DataKey, KeyRing};
use tokio_postgres::Client;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::error::StoreError;
use crate::recorded::RecordedEvent;
use crate::sealing::open_fields;

/// The data keys a unit of work has opened (a command loads a stream, then appends to it:
/// the key is fetched once).
#[derive(Default)]
pub(crate) struct OpenedKeys(std::sync::Mutex<HashMap<Uuid, Arc<DataKey>>>);

impl OpenedKeys {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<DataKey>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, subject_id: Uuid) -> Option<Arc<DataKey>> {
        self.lock().get(&subject_id).cloned()
    }
}

/// The subject's key, or a new one stored for them; refused once they have been erased.
pub(crate) async fn fetch_or_create(
    client: &ClientWrapper,
    keys: &KeyRing,
    tenant_id: Uuid,
    subject_id: Uuid,
) -> Result<DataKey, StoreError> {
    if let Some(key) = fetch(client, keys, subject_id).await? {
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
    let wrapped = keys.wrap(subject_id, &key)?;
    client
        .execute(
            "INSERT INTO data_keys (subject_id, tenant_id, master_key_id, wrapped_key)
             VALUES ($1, $2, $3, $4) ON CONFLICT (subject_id) DO NOTHING",
            &[&subject_id, &tenant_id, &keys.master_key_id(), &wrapped],
        )
        .await?;
    // Another transaction may have won the insert; read back whichever key is stored.
    fetch(client, keys, subject_id)
        .await?
        .ok_or(StoreError::SubjectErased)
}

async fn fetch(
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
pub(crate) async fn fetch_wrapped(
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
    let wrapped = fetch_wrapped(client, &subjects).await?;
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
                Ok(key) => open_fields(key.as_ref(), event.event_id, &mut event.data),
                Err(error) => Err(StoreError::Crypto(*error)),
            }
        })
        .collect())
}

impl crate::unit::Transaction {
    /// Creates the data keys of subjects that are new (a bulk import's accounts) in one
    /// statement, and keeps them opened for this transaction, so its append does not look
    /// each one up and create it on its own. A subject that already has a key keeps it (and
    /// is looked up as usual).
    pub async fn create_data_keys(
        &self,
        tenant_id: Uuid,
        subjects: &[Uuid],
    ) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let mut generated = HashMap::with_capacity(subjects.len());
        let mut wrapped = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let key = DataKey::generate()?;
            wrapped.push(keys.wrap(*subject, &key)?);
            generated.insert(*subject, key);
        }
        let inserted = self
            .client()
            .query(
                "INSERT INTO data_keys (subject_id, tenant_id, master_key_id, wrapped_key)
                 SELECT s.subject_id, $1, $2, s.wrapped
                   FROM unnest($3::uuid[], $4::bytea[]) AS s(subject_id, wrapped)
                  WHERE NOT EXISTS (SELECT 1 FROM erased_subjects e WHERE e.subject_id = s.subject_id)
                 ON CONFLICT (subject_id) DO NOTHING
                 RETURNING subject_id",
                &[&tenant_id, &keys.master_key_id(), &subjects, &wrapped],
            )
            .await?;
        let mut opened = self.shared.opened.lock();
        for row in inserted {
            let subject: Uuid = row.get(0);
            if let Some(key) = generated.remove(&subject) {
                opened.insert(subject, Arc::new(key));
            }
        }
        Ok(())
    }
}
