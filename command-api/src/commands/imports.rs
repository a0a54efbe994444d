//! Bulk imports (ADR 0020): an admin starts one from an uploaded file (its rows stored,
//! sealed, with `import.started` and the queue row, in one transaction), or cancels one.

use std::path::PathBuf;

use api_common::error::ApiError;
use domain::{Context, Import, Plan, Tenant, TenantMembers};
use eventstore::{AppendedEvent, Changes, Loaded, Transaction};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::import_file::{self, Format};
use crate::pipeline::{Answer, Command, Decision, last_position};

/// Rows stored per statement at upload.
const STORE_BATCH: usize = 1000;

pub struct StartImport {
    pub import_id: Uuid,
    pub tenant_id: Uuid,
    pub format: Format,
    /// The rows, counted and their columns checked.
    pub total: u32,
    /// The spooled upload, read again to store its rows.
    pub file: PathBuf,
    /// `IMPORT_ROWS_PER_HOUR` (premium ×5), or `None` for a platform admin (exempt). Checked
    /// after the idempotency key, so a retried upload gets its first answer, not a 429.
    pub rows_per_hour: Option<u32>,
}

/// `{import_id, position}`: the import is queued.
#[derive(Serialize, ToSchema)]
pub struct ImportStarted {
    pub import_id: Uuid,
    /// The rows the file has.
    pub total: u32,
    pub position: i64,
}

impl Command for StartImport {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<Import>);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        let reader = transaction.reader();
        if let Some(base) = self.rows_per_hour {
            let tenant = reader.load::<Tenant>(self.tenant_id).await?;
            let budget = i64::from(base)
                * if tenant.state.plan == Plan::Premium {
                    5
                } else {
                    1
                };
            let (used, retry_after) = transaction.import_rows_in_last_hour(self.tenant_id).await?;
            if used + i64::from(self.total) > budget {
                return Err(ApiError::RateLimited {
                    detail: format!(
                        "this import's {} rows would pass the tenant's {budget} import rows an hour ({used} used)",
                        self.total
                    ),
                    retry_after: u64::try_from(retry_after.max(1)).unwrap_or(1),
                });
            }
        }
        let members = reader.members(self.tenant_id).await?;
        let import = reader.load::<Import>(self.import_id).await?;
        Ok((members, import))
    }

    fn decide(
        &self,
        (members, import): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let events = domain::import::start(
            members,
            &import.state,
            (self.import_id, self.tenant_id),
            self.format.as_str(),
            self.total,
            context,
        )?;
        let by = context.actor.user_id().unwrap_or_default();
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(by)
                .appending(import, events),
        ))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _: &Self::State,
        context: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
        let (file, format) = (self.file.clone(), self.format);
        let reading = tokio::task::spawn_blocking(move || {
            import_file::read(&file, format, STORE_BATCH, |batch| {
                sender.blocking_send(batch).is_ok()
            })
        });
        let mut stored = Ok(());
        while let Some(batch) = receiver.recv().await {
            if let Err(error) = transaction.insert_import_rows(self.import_id, &batch).await {
                stored = Err(error);
                break;
            }
        }
        drop(receiver);
        reading.await.map_err(ApiError::internal)??;
        stored?;
        let started_by = context.actor.user_id().unwrap_or_default();
        let total = i32::try_from(self.total).map_err(ApiError::internal)?;
        transaction
            .create_import(
                (self.import_id, self.tenant_id),
                self.format.as_str(),
                total,
                started_by,
                last_position(appended, 0),
            )
            .await?;
        Ok(())
    }

    fn answer(
        &self,
        _: &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = %self.tenant_id, import_id = %self.import_id, total = self.total, "import queued");
        Answer::accepted(ImportStarted {
            import_id: self.import_id,
            total: self.total,
            position: last_position(appended, 0),
        })
    }
}

pub struct CancelImport {
    pub tenant_id: Uuid,
    pub import_id: Uuid,
}

/// `{import_id, status, position}` after a cancellation.
#[derive(Serialize, ToSchema)]
pub struct ImportCancelled {
    pub import_id: Uuid,
    #[schema(example = "cancelled")]
    pub status: String,
    pub position: i64,
}

impl Command for CancelImport {
    type Unit = Transaction;
    type State = (TenantMembers, Loaded<Import>);
    type Outcome = ();

    async fn load(&self, transaction: &Transaction) -> Result<Self::State, ApiError> {
        // The queue row first: a batch being written finishes before the import is read.
        transaction.lock_import(self.import_id).await?;
        let reader = transaction.reader();
        let members = reader.members(self.tenant_id).await?;
        let import = reader.load::<Import>(self.import_id).await?;
        if import.state.tenant_id != Some(self.tenant_id) {
            return Err(domain::DomainError::ImportNotFound.into());
        }
        Ok((members, import))
    }

    fn decide(
        &self,
        (members, import): &Self::State,
        context: &Context,
    ) -> Result<Decision, ApiError> {
        let events = domain::import::cancel(members, &import.state, context)?;
        let by = context.actor.user_id().unwrap_or_default();
        Ok(Decision::to_append(
            Changes::new(self.tenant_id, context.now)
                .by(by)
                .appending(import, events),
        ))
    }

    async fn within(
        &self,
        transaction: &Transaction,
        _: &Self::State,
        _: &Context,
        appended: &[AppendedEvent],
    ) -> Result<(), ApiError> {
        transaction
            .close_import(self.import_id, "cancelled", last_position(appended, 0))
            .await?;
        Ok(())
    }

    fn answer(
        &self,
        (_, import): &Self::State,
        _: (),
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError> {
        tracing::info!(tenant_id = %self.tenant_id, import_id = %self.import_id, "import cancelled");
        Answer::ok(ImportCancelled {
            import_id: self.import_id,
            status: "cancelled".into(),
            position: last_position(appended, import.last_position),
        })
    }
}
