//! Events of a bulk import's stream (aggregate id = import id).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventKind;

/// The counts of an import so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImportCounts {
    /// Rows looked at (created + skipped + failed).
    pub processed: u32,
    pub created: u32,
    /// Rows whose address already had an account in the tenant (or came earlier in the file).
    pub skipped: u32,
    pub failed: u32,
}

/// One row that could not be imported: its number (1 is the first data row) and why, in
/// words that quote nothing of the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RowError {
    pub row: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum ImportEvent {
    /// An admin uploaded a file of `total` rows (`csv` or `ndjson`); it waits for a worker.
    #[serde(rename = "import.started")]
    Started {
        import_id: Uuid,
        tenant_id: Uuid,
        format: String,
        total: u32,
        started_by: Uuid,
    },
    /// A batch was committed: the counts after it, and the batch's row errors.
    #[serde(rename = "import.progressed")]
    Progressed {
        import_id: Uuid,
        counts: ImportCounts,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<RowError>,
    },
    /// Every row was looked at.
    #[serde(rename = "import.completed")]
    Completed {
        import_id: Uuid,
        counts: ImportCounts,
    },
    /// The import stopped for a reason that is not a row's (its rows are gone).
    #[serde(rename = "import.failed")]
    Failed {
        import_id: Uuid,
        counts: ImportCounts,
        reason: String,
    },
    /// An admin (or, with `cancelled_by` null, an operator) stopped it; the rows after the
    /// last committed batch are not imported.
    #[serde(rename = "import.cancelled")]
    Cancelled {
        import_id: Uuid,
        counts: ImportCounts,
        cancelled_by: Option<Uuid>,
    },
}

impl EventKind for ImportEvent {
    const AGGREGATE_TYPE: &'static str = "import";
    fn event_type(&self) -> &'static str {
        match self {
            ImportEvent::Started { .. } => "import.started",
            ImportEvent::Progressed { .. } => "import.progressed",
            ImportEvent::Completed { .. } => "import.completed",
            ImportEvent::Failed { .. } => "import.failed",
            ImportEvent::Cancelled { .. } => "import.cancelled",
        }
    }
    fn personal_fields(&self) -> &'static [&'static str] {
        &[]
    }
}
