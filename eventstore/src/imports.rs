//! Bulk imports' rows and work queue, written in a command's or a batch's transaction (see
//! [`infra::imports`]).

use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::unit::Transaction;

impl Transaction {
    /// Stores a batch of uploaded rows, sealed.
    pub async fn insert_import_rows(
        &self,
        import_id: Uuid,
        rows: &[(i32, Value)],
    ) -> Result<(), StoreError> {
        infra::imports::insert_rows(self.client(), &self.shared.keys, import_id, rows)
            .await
            .map_err(|error| StoreError::Corrupt(format!("{error:#}")))
    }

    /// The next rows of an import, opened.
    pub async fn import_rows_from(
        &self,
        import_id: Uuid,
        from: i32,
        limit: i64,
    ) -> Result<Vec<(i32, Value)>, StoreError> {
        Ok(
            infra::imports::rows_from(self.client(), &self.shared.keys, import_id, from, limit)
                .await?,
        )
    }

    /// Queues a new import.
    pub async fn create_import(
        &self,
        ids: (Uuid, Uuid),
        format: &str,
        total: i32,
        started_by: Uuid,
        position: i64,
    ) -> Result<(), StoreError> {
        Ok(infra::imports::create(self.client(), ids, format, total, started_by, position).await?)
    }

    /// Locks the import's queue row for the transaction: `(status, next_row, claimed_by)`.
    pub async fn lock_import(
        &self,
        import_id: Uuid,
    ) -> Result<Option<(String, i32, Option<String>)>, StoreError> {
        Ok(infra::imports::lock(self.client(), import_id).await?)
    }

    /// Records a committed batch in the queue row.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_import_batch(
        &self,
        import_id: Uuid,
        next_row: i32,
        counts: [i32; 4],
        errors: &[(i32, String)],
        status: &str,
        lease_ms: f64,
        position: i64,
    ) -> Result<(), StoreError> {
        infra::imports::record_batch(
            self.client(),
            import_id,
            next_row,
            counts,
            errors,
            status,
            lease_ms,
            position,
        )
        .await?;
        if status != "running" {
            infra::imports::forget_rows(self.client(), import_id).await?;
        }
        Ok(())
    }

    /// Ends an import as `status` and forgets its rows.
    pub async fn close_import(
        &self,
        import_id: Uuid,
        status: &str,
        position: i64,
    ) -> Result<(), StoreError> {
        Ok(infra::imports::close(self.client(), import_id, status, position).await?)
    }

    /// Rows of the tenant's imports started within the last hour, and the seconds until the
    /// oldest of them leaves the hour.
    pub async fn import_rows_in_last_hour(
        &self,
        tenant_id: Uuid,
    ) -> Result<(i64, i64), StoreError> {
        Ok(infra::imports::rows_in_last_hour(self.client(), tenant_id).await?)
    }
}
