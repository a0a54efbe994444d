//! Running a command: one unit of work, idempotency, and re-deciding on conflicts.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use infra::store::{EventStore, IdempotencyClaim, UnitOfWork};
use serde_json::Value;

use api_common::error::ApiError;
use api_common::extract::Idempotency;

/// What a command answers.
#[derive(Debug)]
pub enum Answer {
    /// Success: the events are committed and this is the answer (replayed for retries).
    Success {
        status: StatusCode,
        body: Option<Value>,
        replayed: bool,
    },
    /// The command was refused, but what it recorded (a failed login, a closed session)
    /// is committed. The refusal is not remembered for the idempotency key.
    Refused(ApiError),
}

impl Answer {
    pub fn ok(body: Value) -> Self {
        Answer::Success {
            status: StatusCode::OK,
            body: Some(body),
            replayed: false,
        }
    }

    pub fn created(body: Value) -> Self {
        Answer::Success {
            status: StatusCode::CREATED,
            body: Some(body),
            replayed: false,
        }
    }

    pub fn no_content() -> Self {
        Answer::Success {
            status: StatusCode::NO_CONTENT,
            body: None,
            replayed: false,
        }
    }

    pub fn into_response(self) -> Result<HttpResponse, ApiError> {
        match self {
            Answer::Success {
                status,
                body,
                replayed,
            } => {
                let mut response = HttpResponse::build(status);
                if replayed {
                    response.insert_header(("Idempotent-Replayed", "true"));
                }
                Ok(match body {
                    Some(body) if status != StatusCode::NO_CONTENT => response.json(body),
                    _ => response.finish(),
                })
            }
            Answer::Refused(error) => Err(error),
        }
    }
}

/// Runs `decide_and_append` in a unit of work. A version conflict (another writer got to a
/// stream first) rolls back and decides again against fresh state, up to `retries` times,
/// then answers 409. With an idempotency key, a retried request gets the first answer and
/// appends nothing.
pub async fn execute<F>(
    store: &EventStore,
    idempotency: Option<&Idempotency>,
    retries: u32,
    decide_and_append: F,
) -> Result<Answer, ApiError>
where
    F: AsyncFn(&UnitOfWork) -> Result<Answer, ApiError>,
{
    run(store, idempotency, retries, false, decide_and_append).await
}

/// Like [`execute`], for commands that load streams and append once, nothing else. Without
/// an idempotency key, the append joins the process's group commit (many commands, one
/// transaction; ADR 0010); with one, the command runs in its own transaction, so that its
/// answer is recorded atomically with its events.
pub async fn execute_grouped<F>(
    store: &EventStore,
    idempotency: Option<&Idempotency>,
    retries: u32,
    decide_and_append: F,
) -> Result<Answer, ApiError>
where
    F: AsyncFn(&UnitOfWork) -> Result<Answer, ApiError>,
{
    run(
        store,
        idempotency,
        retries,
        idempotency.is_none(),
        decide_and_append,
    )
    .await
}

async fn run<F>(
    store: &EventStore,
    idempotency: Option<&Idempotency>,
    retries: u32,
    grouped: bool,
    decide_and_append: F,
) -> Result<Answer, ApiError>
where
    F: AsyncFn(&UnitOfWork) -> Result<Answer, ApiError>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let unit = if grouped {
            store.begin_grouped()
        } else {
            store.begin().await?
        };
        if let Some(idempotency) = idempotency {
            match unit
                .claim_idempotency(
                    &idempotency.scope,
                    &idempotency.key,
                    &idempotency.request_hash,
                )
                .await?
            {
                IdempotencyClaim::Fresh => {}
                IdempotencyClaim::Replay { status, body } => {
                    unit.rollback().await;
                    return Ok(Answer::Success {
                        status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                        body: (!body.is_null()).then_some(body),
                        replayed: true,
                    });
                }
                IdempotencyClaim::Mismatch => {
                    unit.rollback().await;
                    return Err(ApiError::IdempotencyKeyReused);
                }
            }
        }
        match decide_and_append(&unit).await {
            Ok(answer) => {
                if let Some(idempotency) = idempotency {
                    match &answer {
                        Answer::Success { status, body, .. } => {
                            let body = body.clone().unwrap_or(Value::Null);
                            unit.complete_idempotency(
                                &idempotency.scope,
                                &idempotency.key,
                                status.as_u16(),
                                &body,
                            )
                            .await?;
                        }
                        Answer::Refused(_) => {
                            unit.forget_idempotency(&idempotency.scope, &idempotency.key)
                                .await?;
                        }
                    }
                }
                unit.commit().await?;
                return Ok(answer);
            }
            Err(ApiError::ConcurrentModification) if attempt <= retries => {
                unit.rollback().await;
                tracing::debug!(attempt, "version conflict; deciding again");
            }
            Err(error) => {
                unit.rollback().await;
                return Err(error);
            }
        }
    }
}
