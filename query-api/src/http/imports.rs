//! `/v1/tenants/{tenant_id}/imports`: where bulk imports stand, for the tenant's admins. Read
//! from the imports' queue rows, which every batch updates in the transaction of its events;
//! `X-Min-Position` waits for the users view, so the imported users are listed too.

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::AdminListProblems;
use api_common::extract::path_id;
use api_common::{ApiError, Caller};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::pagination::{Cursor, limit};
use crate::state::AppState;

use super::{MinPosition, answer, database, require_admin, view};

/// The errors an import answers with, at most.
const SHOWN_ERRORS: i64 = 100;

/// A row that could not be imported.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRowError {
    /// 1 is the first row after the header.
    row: i32,
    /// Names the column and its rule, never the value.
    reason: String,
}

/// An import: its status and counts, updated with every batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    import_id: Uuid,
    #[schema(
        example = "running",
        pattern = "^(queued|running|completed|failed|cancelled)$"
    )]
    status: String,
    #[schema(example = "csv")]
    format: String,
    total: i32,
    processed: i32,
    created: i32,
    skipped: i32,
    failed: i32,
    /// The first 100 row errors, by row.
    errors: Vec<ImportRowError>,
    started_by: Uuid,
    created_at: DateTime<Utc>,
    /// When a worker first took it (null while queued).
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportPage {
    items: Vec<ImportView>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

const COLUMNS: &str = "import_id, status, format, total, processed, created, skipped, failed,
                       started_by, created_at, started_at, finished_at";

fn import_view(row: &Row, errors: Vec<ImportRowError>) -> ImportView {
    ImportView {
        import_id: row.get(0),
        status: row.get(1),
        format: row.get(2),
        total: row.get(3),
        processed: row.get(4),
        created: row.get(5),
        skipped: row.get(6),
        failed: row.get(7),
        errors,
        started_by: row.get(8),
        created_at: row.get(9),
        started_at: row.get(10),
        finished_at: row.get(11),
    }
}

/// `GET /v1/tenants/{tenant_id}/imports/{import_id}`: one import (admins).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/imports/{import_id}", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path), MinPosition),
    responses(
    (status = 200, description = "the import, its counts and first 100 row errors", body = ImportView, headers(("X-Projection-Position" = i64, description = "the position of the users view the answer waited for"))),
    (status = 404, description = "no such import in the caller's tenant", body = api_common::docs::Problem, content_type = "application/problem+json"),
    AdminListProblems
))]
pub async fn one_import(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    require_admin(&caller)?;
    let import_id = path_id(&path.1, "import")?;
    let (client, position) = view(&state, &request, "users").await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM imports WHERE import_id = $1 AND tenant_id = $2"),
            &[&import_id, &tenant_id],
        )
        .await
        .map_err(database)?
        .ok_or_else(|| ApiError::NotFound("no such import".into()))?;
    let errors = client
        .query(
            "SELECT row_number, reason FROM import_errors WHERE import_id = $1
              ORDER BY row_number LIMIT $2",
            &[&import_id, &SHOWN_ERRORS],
        )
        .await
        .map_err(database)?
        .iter()
        .map(|row| ImportRowError {
            row: row.get(0),
            reason: row.get(1),
        })
        .collect();
    Ok(answer(import_view(&row, errors), position))
}

/// `GET /v1/tenants/{tenant_id}/imports`: the tenant's imports, newest first (admins; row
/// errors only on each import's own page).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/imports", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ImportQuery, MinPosition),
    responses(
    (status = 200, description = "imports, newest first", body = ImportPage, headers(("X-Projection-Position" = i64, description = "the position of the users view the answer waited for"))),
    AdminListProblems
))]
pub async fn list_imports(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ImportQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    require_admin(&caller)?;
    let limit = limit(query.limit)?;
    let cursor = Cursor::decode_optional(query.cursor.as_deref(), "imports")?;
    let (after_created, after_id) = match &cursor {
        Some(Cursor {
            after_created_micros: Some(micros),
            after_id: Some(id),
            ..
        }) => (DateTime::from_timestamp_micros(*micros), Some(*id)),
        _ => (None, None),
    };
    let (client, position) = view(&state, &request, "users").await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM imports
                  WHERE tenant_id = $1
                    AND ($2::timestamptz IS NULL OR (created_at, import_id) < ($2, $3))
                  ORDER BY created_at DESC, import_id DESC LIMIT $4"
            ),
            &[&tenant_id, &after_created, &after_id, &(limit + 1)],
        )
        .await
        .map_err(database)?;
    let items: Vec<ImportView> = rows
        .iter()
        .take(limit as usize)
        .map(|row| import_view(row, Vec::new()))
        .collect();
    let next_cursor = match items.last() {
        Some(last) if rows.len() as i64 > limit => Some(
            Cursor {
                kind: "imports".into(),
                before_position: None,
                after_created_micros: Some(last.created_at.timestamp_micros()),
                after_id: Some(last.import_id),
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(answer(ImportPage { items, next_cursor }, position))
}
