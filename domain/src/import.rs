//! Bulk import (ADR 0020): an admin uploads a file of users; a worker creates them in
//! batches. The aggregate knows where the import stands; the rows' rules are the signup's
//! value types, so an imported address or name obeys exactly what a signup's does.

use uuid::Uuid;

use crate::event::{ImportCounts, ImportEvent, InvitationEvent, RowError, UserEvent, UserSource};
use crate::members::TenantMembers;
use crate::values::{DisplayName, Email, Locale, Phone};
use crate::{Context, DomainError, Role};

/// The most rows one import may have.
pub const MAX_ROWS: u32 = 100_000;
/// The columns a file may have, and those it must.
pub const COLUMNS: [&str; 5] = ["email", "display_name", "role", "locale", "phone"];
pub const REQUIRED: [&str; 2] = ["email", "display_name"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl ImportStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ImportStatus::Queued => "queued",
            ImportStatus::Running => "running",
            ImportStatus::Completed => "completed",
            ImportStatus::Failed => "failed",
            ImportStatus::Cancelled => "cancelled",
        }
    }

    /// Whether rows may still be imported.
    pub fn is_open(&self) -> bool {
        matches!(self, ImportStatus::Queued | ImportStatus::Running)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Import {
    pub import_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub status: Option<ImportStatus>,
    pub total: u32,
    pub counts: ImportCounts,
    pub started_by: Option<Uuid>,
    /// The number of events applied: the stream's version.
    pub version: i64,
}

impl Import {
    pub fn apply(&mut self, event: &ImportEvent) {
        match event {
            ImportEvent::Started {
                import_id,
                tenant_id,
                total,
                started_by,
                ..
            } => {
                self.import_id = Some(*import_id);
                self.tenant_id = Some(*tenant_id);
                self.total = *total;
                self.started_by = Some(*started_by);
                self.status = Some(ImportStatus::Queued);
            }
            ImportEvent::Progressed { counts, .. } => {
                self.counts = *counts;
                self.status = Some(ImportStatus::Running);
            }
            ImportEvent::Completed { counts, .. } => {
                self.counts = *counts;
                self.status = Some(ImportStatus::Completed);
            }
            ImportEvent::Failed { counts, .. } => {
                self.counts = *counts;
                self.status = Some(ImportStatus::Failed);
            }
            ImportEvent::Cancelled { counts, .. } => {
                self.counts = *counts;
                self.status = Some(ImportStatus::Cancelled);
            }
        }
        self.version += 1;
    }

    pub fn is_open(&self) -> bool {
        self.status.is_some_and(|status| status.is_open())
    }
}

/// Whether a file's columns are the ones an import understands: every unknown column and
/// every missing required one is named.
pub fn check_columns(columns: &[String]) -> Result<(), DomainError> {
    let unknown: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| !COLUMNS.contains(c))
        .collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !columns.iter().any(|c| c == r))
        .collect();
    let mut seen = Vec::new();
    let repeated: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| {
            let again = seen.contains(c);
            seen.push(*c);
            again
        })
        .collect();
    let mut problems = Vec::new();
    if !unknown.is_empty() {
        problems.push(format!("unknown columns: {}", unknown.join(", ")));
    }
    if !missing.is_empty() {
        problems.push(format!("missing columns: {}", missing.join(", ")));
    }
    if !repeated.is_empty() {
        problems.push(format!("repeated columns: {}", repeated.join(", ")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "{} (the columns are {})",
            problems.join("; "),
            COLUMNS.join(", ")
        )))
    }
}

/// One row, checked with the signup's value types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub email: Email,
    pub display_name: DisplayName,
    pub role: Role,
    pub locale: Option<Locale>,
    pub phone: Option<Phone>,
}

impl ImportRow {
    /// A row from its `(column, value)` pairs; the reason for a refusal names the column and
    /// its rule, never the value.
    pub fn parse<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let (mut email, mut name, mut role, mut locale, mut phone) = (None, None, None, None, None);
        for (column, value) in fields {
            let value = value.trim();
            let field = |error: DomainError| format!("{column}: {error}");
            match column {
                "email" => email = Some(Email::parse(value).map_err(field)?),
                "display_name" => name = Some(DisplayName::parse(value).map_err(field)?),
                "role" if value.is_empty() => {}
                "role" => {
                    role = Some(match value {
                        "admin" => Role::Admin,
                        "member" => Role::Member,
                        _ => return Err("role: must be admin or member".into()),
                    })
                }
                "locale" if value.is_empty() => {}
                "locale" => locale = Some(Locale::parse(value).map_err(field)?),
                "phone" if value.is_empty() => {}
                "phone" => phone = Some(Phone::parse(value).map_err(field)?),
                _ => {}
            }
        }
        Ok(ImportRow {
            email: email.ok_or("email: missing")?,
            display_name: name.ok_or("display_name: missing")?,
            role: role.unwrap_or(Role::Member),
            locale,
            phone,
        })
    }
}

/// An admin starts an import of `total` rows (already counted and below [`MAX_ROWS`]).
pub fn start(
    members: &TenantMembers,
    import: &Import,
    (import_id, tenant_id): (Uuid, Uuid),
    format: &str,
    total: u32,
    context: &Context,
) -> Result<Vec<ImportEvent>, DomainError> {
    let started_by = members.require_admin(&context.actor)?;
    if import.import_id.is_some() {
        return Err(DomainError::Invalid("the import already exists".into()));
    }
    if total == 0 || total > MAX_ROWS {
        return Err(DomainError::Invalid(format!(
            "an import has 1 to {MAX_ROWS} rows"
        )));
    }
    Ok(vec![ImportEvent::Started {
        import_id,
        tenant_id,
        format: format.to_owned(),
        total,
        started_by,
    }])
}

/// An admin cancels an open import: it stops after the batch being written.
pub fn cancel(
    members: &TenantMembers,
    import: &Import,
    context: &Context,
) -> Result<Vec<ImportEvent>, DomainError> {
    let cancelled_by = members.require_admin(&context.actor)?;
    cancelled(import, Some(cancelled_by))
}

/// An operator cancels an open import from the command line (no actor).
pub fn cancel_by_operator(import: &Import) -> Result<Vec<ImportEvent>, DomainError> {
    cancelled(import, None)
}

fn cancelled(import: &Import, cancelled_by: Option<Uuid>) -> Result<Vec<ImportEvent>, DomainError> {
    let import_id = import.import_id.ok_or(DomainError::ImportNotFound)?;
    if !import.is_open() {
        return Err(DomainError::ImportClosed(format!(
            "the import is {} already",
            import.status.map_or("over", |s| s.as_str())
        )));
    }
    Ok(vec![ImportEvent::Cancelled {
        import_id,
        counts: import.counts,
        cancelled_by,
    }])
}

/// A batch was written: its counts added, and the import completed once every row was looked
/// at. Nothing for an import that is no longer open (cancelled meanwhile).
pub fn record_batch(
    import: &Import,
    batch: ImportCounts,
    errors: Vec<RowError>,
) -> Vec<ImportEvent> {
    let Some(import_id) = import.import_id.filter(|_| import.is_open()) else {
        return Vec::new();
    };
    let counts = ImportCounts {
        processed: import.counts.processed + batch.processed,
        created: import.counts.created + batch.created,
        skipped: import.counts.skipped + batch.skipped,
        failed: import.counts.failed + batch.failed,
    };
    let mut events = vec![ImportEvent::Progressed {
        import_id,
        counts,
        errors,
    }];
    if counts.processed >= import.total {
        events.push(ImportEvent::Completed { import_id, counts });
    }
    events
}

/// The import stops for a reason that is not a row's.
pub fn fail(import: &Import, reason: &str) -> Vec<ImportEvent> {
    match import.import_id.filter(|_| import.is_open()) {
        Some(import_id) => vec![ImportEvent::Failed {
            import_id,
            counts: import.counts,
            reason: reason.to_owned(),
        }],
        None => Vec::new(),
    }
}

/// The invitation that lets an imported account's owner set its first password: for the
/// account, from the admin who started the import.
pub fn invitation_for(
    (import_id, invitation_id): (Uuid, Uuid),
    (tenant_id, user_id): (Uuid, Uuid),
    row: &ImportRow,
    (token_hash, expires_at): (String, chrono::DateTime<chrono::Utc>),
    invited_by: Uuid,
) -> InvitationEvent {
    InvitationEvent::Created {
        invitation_id,
        tenant_id,
        user_id,
        email: row.email.as_str().to_owned(),
        role: row.role,
        team_ids: Vec::new(),
        token_hash,
        expires_at,
        invited_by,
        import_id: Some(import_id),
    }
}

/// The events that create an imported account: no password (the owner sets one through
/// the emailed link), a member with the row's role, its phone and locale.
pub fn imported_user(
    tenant_id: Uuid,
    user_id: Uuid,
    row: &ImportRow,
    imported_by: Uuid,
) -> Vec<UserEvent> {
    let mut events = vec![
        UserEvent::Created {
            user_id,
            tenant_id,
            email: row.email.as_str().to_owned(),
            display_name: row.display_name.as_str().to_owned(),
            password_hash: String::new(),
            email_verification: None,
            source: Some(UserSource::Import),
        },
        UserEvent::MemberJoined {
            tenant_id,
            user_id,
            role: row.role,
        },
    ];
    events.extend(UserEvent::profile_updated(
        user_id,
        None,
        row.phone.as_ref().map(|p| Some(p.as_str().to_owned())),
        row.locale.as_ref().map(|l| l.as_str().to_owned()),
        imported_by,
    ));
    events
}
