//! `/v1/tenants/{tenant_id}/imports`: an admin uploads a file of users (streamed to a spool
//! file, never held whole in memory), and cancels an import (ADR 0020).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use api_common::docs::{AdminProblems, KeyProblems, Problem};
use api_common::error::ApiError;
use api_common::extract::{Caller, Idempotency, RequestMeta, path_id};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{IdempotencyKey, run, run_for_caller};
use crate::app_state::AppState;
use crate::commands::imports::{CancelImport, ImportCancelled, ImportStarted, StartImport};
use crate::import_file::{self, Format};

/// A spooled upload, removed when dropped.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `POST /v1/tenants/{tenant_id}/imports`: an admin uploads users as `text/csv` (header
/// `email,display_name[,role,locale,phone]`) or `application/x-ndjson`.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/imports", tag = "imports",
    request_body(content = String, description = "CSV with a header row, or NDJSON (one object per line) with the same fields", content_type = "text/csv"),
    params(("tenant_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 202, description = "`import.started`: the rows are stored and wait for a worker (`queued`); poll the query API for progress", body = ImportStarted),
    (status = 400, description = "unknown, missing or repeated columns (named), an empty file", body = Problem, content_type = "application/problem+json"),
    AdminProblems,
    (status = 404, description = "not the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "more than `IMPORT_MAX_BYTES` or 100,000 rows; nothing is stored", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "neither `text/csv` nor `application/x-ndjson`", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "the tenant's `IMPORT_ROWS_PER_HOUR` would be exceeded (premium ×5)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "seconds until the budget allows this file"))),
    KeyProblems
))]
pub async fn upload(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path)?;
    if !caller.is_admin() {
        return Err(domain::DomainError::NotAllowed.into());
    }
    let content_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::of(content_type).ok_or(ApiError::UnsupportedMediaType)?;
    let limit = state.settings.import_max_bytes;
    let dir = state.settings.data_dir.join("imports");
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    let import_id = Uuid::now_v7();
    let spool = Spool(dir.join(format!("{import_id}.upload")));
    let file = Arc::new(Mutex::new(
        std::fs::File::create(&spool.0).map_err(ApiError::internal)?,
    ));
    let mut digest = Sha256::new();
    let mut size = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::MalformedBody(format!("the upload broke off: {e}")))?;
        size += chunk.len();
        if size > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "an import file has at most {limit} bytes"
            )));
        }
        digest.update(&chunk);
        let file = Arc::clone(&file);
        web::block(move || {
            file.lock()
                .map_err(|_| std::io::Error::other("the spool file's lock is poisoned"))?
                .write_all(&chunk)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    }
    drop(file);
    let path = spool.0.clone();
    let total = web::block(move || import_file::count(&path, format))
        .await
        .map_err(ApiError::internal)??;
    let idempotency = Idempotency::of(&request, Some(caller.0.user_id), &digest.finalize())?;
    let command = StartImport {
        import_id,
        tenant_id,
        format,
        total,
        file: spool.0.clone(),
        rows_per_hour: (!caller.0.platform_admin).then_some(state.settings.import_rows_per_hour),
    };
    let meta = RequestMeta::of(&request);
    run(
        &state,
        &meta,
        caller.actor(),
        idempotency.as_ref(),
        &command,
    )
    .await
}

/// `DELETE /v1/tenants/{tenant_id}/imports/{import_id}`: an admin stops an import after the
/// batch being written.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/imports/{import_id}", tag = "imports",
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = [])),
    responses(
    (status = 200, description = "`import.cancelled`: the rows not yet imported are dropped", body = ImportCancelled),
    AdminProblems,
    (status = 404, description = "no such import in the caller's tenant", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the import is over (completed, failed or cancelled)", body = Problem, content_type = "application/problem+json"),
    KeyProblems
))]
pub async fn cancel(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = caller.tenant_in_path(&path.0)?;
    let import_id = path_id(&path.1, "import")?;
    let command = CancelImport {
        tenant_id,
        import_id,
    };
    run_for_caller(&state, &request, &caller, &[], &command).await
}
