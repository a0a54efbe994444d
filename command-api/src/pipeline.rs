//! The command pipeline: every command is loaded, decided and appended by one executor,
//! which owns what is the same for all of them — the unit of work, idempotency, re-deciding
//! on conflicts, grouping, and keeping the states it folded. A command says only what it
//! loads, how it decides, what it writes beside its events, and what it answers.
//!
//! Whether a command may join a group commit is its [`Command::Unit`]: a [`Grouped`] command
//! can only read and append once (it has no way to lock, reserve or erase), a
//! [`Transaction`] command gets its own transaction. The executor runs a grouped command in
//! a transaction of its own when its answer must be recorded with its events (an
//! idempotency key).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use api_common::error::ApiError;
use api_common::extract::{Idempotency, RequestMeta};
use chrono::Utc;
use domain::{Actor, Context};
use eventstore::{
    AppendedEvent, Changes, EventMetadata, EventStore, IdempotencyClaim, Transaction, Unit,
};
use serde_json::Value;

pub use eventstore::{Grouped, Transaction as OwnTransaction};

/// One command of the API (or of an operator).
pub trait Command: Sync {
    /// [`Grouped`] when the command only loads and appends; [`Transaction`] when it locks,
    /// reserves unique values or erases.
    type Unit: Unit;
    /// What the decision needs, loaded from the store.
    type State: Send + Sync;
    /// What the decision tells the answer besides the events it appends.
    type Outcome: Send;
    /// The answer carries credentials (tokens): it is never stored for an idempotency key,
    /// and a replay gets a problem instead (ADR 0022).
    const ANSWER_HOLDS_CREDENTIALS: bool = false;
    /// The command decides first on the states kept by earlier commands without reading
    /// their streams (ADR 33): worth it only for a command that appends to the streams it
    /// loads (a profile update), as any other outcome decides again after reading them.
    const DECIDES_ON_KEPT_STATES: bool = false;

    fn load(&self, unit: &Self::Unit)
    -> impl Future<Output = Result<Self::State, ApiError>> + Send;

    /// Decides against the loaded state: the events to append and the outcome. Pure.
    fn decide(
        &self,
        state: &Self::State,
        context: &Context,
    ) -> Result<Decision<Self::Outcome>, ApiError>;

    /// What must commit with the events besides them (only commands with their own
    /// transaction are given one).
    fn within(
        &self,
        _transaction: &Transaction,
        _state: &Self::State,
        _context: &Context,
        _appended: &[AppendedEvent],
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Ok(()) }
    }

    /// The answer, once the events are appended (before the commit, so that it is
    /// recorded with them for an idempotency key).
    fn answer(
        &self,
        state: &Self::State,
        outcome: Self::Outcome,
        appended: &[AppendedEvent],
    ) -> Result<Answer, ApiError>;
}

/// What a decision appends, and what it tells the answer.
pub struct Decision<O = ()> {
    pub changes: Changes,
    pub outcome: O,
}

impl Decision<()> {
    pub fn to_append(changes: Changes) -> Self {
        Decision {
            changes,
            outcome: (),
        }
    }
}

/// Who asks for a command, and how: the request's ids, the actor, the idempotency key.
pub struct Request<'a> {
    pub actor: Actor,
    pub idempotency: Option<&'a Idempotency>,
    /// The source and ids every event's metadata carries; the actor comes from the decision.
    pub metadata: EventMetadata,
}

impl<'a> Request<'a> {
    /// A request over HTTP.
    pub fn http(meta: &RequestMeta, actor: Actor, idempotency: Option<&'a Idempotency>) -> Self {
        Request {
            actor,
            idempotency,
            metadata: meta.event_metadata(None),
        }
    }

    /// A request of a tool (the operator commands, the bench generator), named by `source`.
    pub fn tool(source: &str) -> Self {
        Request {
            actor: Actor::Anonymous,
            idempotency: None,
            metadata: EventMetadata {
                source: source.to_owned(),
                ..Default::default()
            },
        }
    }
}

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
    pub fn ok(body: impl serde::Serialize) -> Result<Self, ApiError> {
        Ok(Answer::Success {
            status: StatusCode::OK,
            body: Some(serde_json::to_value(body).map_err(ApiError::internal)?),
            replayed: false,
        })
    }

    pub fn created(body: impl serde::Serialize) -> Result<Self, ApiError> {
        Ok(Answer::Success {
            status: StatusCode::CREATED,
            body: Some(serde_json::to_value(body).map_err(ApiError::internal)?),
            replayed: false,
        })
    }

    /// 202: accepted, the rest happens later (a purge, an email).
    pub fn accepted(body: impl serde::Serialize) -> Result<Self, ApiError> {
        Ok(Answer::Success {
            status: StatusCode::ACCEPTED,
            body: Some(serde_json::to_value(body).map_err(ApiError::internal)?),
            replayed: false,
        })
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

    /// The body of a success (what an operator command prints).
    pub fn body(&self) -> Option<&Value> {
        match self {
            Answer::Success { body, .. } => body.as_ref(),
            Answer::Refused(_) => None,
        }
    }
}

/// The position of the last event appended, or `otherwise` when nothing was.
pub fn last_position(appended: &[AppendedEvent], otherwise: i64) -> i64 {
    appended
        .iter()
        .map(|e| e.position)
        .max()
        .unwrap_or(otherwise)
}

/// Runs a command. A version conflict (another writer got to a stream first) rolls back
/// and decides again against fresh state, up to `retries` times, then answers 409. With an
/// idempotency key, a retried request gets the first answer and appends nothing.
#[tracing::instrument(skip_all, fields(command = std::any::type_name::<C>()))]
pub async fn execute<C: Command>(
    store: &EventStore,
    retries: u32,
    request: &Request<'_>,
    command: &C,
) -> Result<Answer, ApiError> {
    let mut attempt = 0;
    let mut trusting = C::DECIDES_ON_KEPT_STATES;
    loop {
        attempt += 1;
        let unit = match request.idempotency {
            Some(idempotency) => {
                let transaction = store.begin().await?;
                match transaction
                    .claim_idempotency(
                        &idempotency.scope,
                        &idempotency.key,
                        &idempotency.request_hash,
                    )
                    .await?
                {
                    IdempotencyClaim::Fresh => C::Unit::within(transaction),
                    IdempotencyClaim::Replay { status, body } => {
                        transaction.rollback().await;
                        return Ok(Answer::Success {
                            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                            body: (!body.is_null()).then_some(body),
                            replayed: true,
                        });
                    }
                    IdempotencyClaim::Mismatch => {
                        transaction.rollback().await;
                        return Err(ApiError::IdempotencyKeyReused);
                    }
                    IdempotencyClaim::Withheld => {
                        transaction.rollback().await;
                        return Err(ApiError::IdempotentAnswerWithheld);
                    }
                }
            }
            None if trusting => C::Unit::begin_trusting_kept(store).await?,
            None => C::Unit::begin(store).await?,
        };
        match attempt_once(command, unit, request).await {
            Attempt::Unproven => {
                // Decided on a kept state the outcome could not prove current: decide
                // again on the streams as they are (not a conflict; counts no retry).
                metrics::counter!("eventra_kept_state_decisions_total", "result" => "unproven")
                    .increment(1);
                tracing::debug!("a kept state was not proven current; deciding again");
                trusting = false;
                attempt -= 1;
            }
            Attempt::Done(Err(ApiError::ConcurrentModification)) if attempt <= retries => {
                tracing::debug!(attempt, "version conflict; deciding again");
                trusting = false;
            }
            Attempt::Done(outcome) => return outcome,
        }
    }
}

/// How one attempt ended.
enum Attempt {
    Done(Result<Answer, ApiError>),
    /// It decided on a kept state taken without reading its stream, and its outcome did not
    /// prove that state current (it appended nothing there, at another version, refused, or
    /// its append found the stream moved on): nothing was written.
    Unproven,
}

/// One attempt: load, decide, append, write beside, answer, record the answer, commit.
/// Whatever fails rolls the unit back.
async fn attempt_once<C: Command>(command: &C, unit: C::Unit, request: &Request<'_>) -> Attempt {
    let state = match command.load(&unit).await {
        Ok(state) => state,
        Err(error) => {
            unit.rollback().await;
            return Attempt::Done(Err(error));
        }
    };
    let context = Context {
        now: Utc::now(),
        actor: request.actor,
    };
    let decision = command.decide(&state, &context);
    // A decision on kept states taken without their streams stands only if it appends to
    // each of those streams at the version it saw: the append then proves nothing came
    // after (or fails on the stream's sequence, and the command decides again).
    let unverified = unit.unverified();
    let trusted = !unverified.is_empty();
    if trusted
        && !decision.as_ref().is_ok_and(|decision| {
            unverified
                .iter()
                .all(|&(id, version)| decision.changes.appends_at(id, version))
        })
    {
        unit.rollback().await;
        return Attempt::Unproven;
    }
    let Decision { changes, outcome } = match decision {
        Ok(decision) => decision,
        Err(error) => {
            unit.rollback().await;
            return Attempt::Done(Err(error));
        }
    };
    let metadata = EventMetadata {
        actor_id: changes.actor_id,
        ..request.metadata.clone()
    };
    let (appended, transaction) = match unit.append(changes, &metadata).await {
        Ok(appended) => appended,
        Err(eventstore::StoreError::Conflict { .. }) if trusted => return Attempt::Unproven,
        Err(error) => return Attempt::Done(Err(error.into())),
    };
    if trusted {
        metrics::counter!("eventra_kept_state_decisions_total", "result" => "proven").increment(1);
    }
    let Some(transaction) = transaction else {
        // Committed by the group commit: nothing is left to write.
        return Attempt::Done(command.answer(&state, outcome, &appended));
    };
    Attempt::Done(
        match finish(
            command,
            &transaction,
            request,
            (&state, &context),
            outcome,
            &appended,
        )
        .await
        {
            Ok(answer) => transaction
                .commit()
                .await
                .map(|()| answer)
                .map_err(Into::into),
            Err(error) => {
                transaction.rollback().await;
                Err(error)
            }
        },
    )
}

/// What follows the append in a transaction: the command's own writes, the answer, and the
/// idempotency record (or its release, for a refusal).
async fn finish<C: Command>(
    command: &C,
    transaction: &Transaction,
    request: &Request<'_>,
    (state, context): (&C::State, &Context),
    outcome: C::Outcome,
    appended: &[AppendedEvent],
) -> Result<Answer, ApiError> {
    if <C::Unit as Unit>::OWN_TRANSACTION {
        command
            .within(transaction, state, context, appended)
            .await?;
    }
    let answer = command.answer(state, outcome, appended)?;
    if let Some(idempotency) = request.idempotency {
        match &answer {
            Answer::Success { status, body, .. } => {
                let body = body.clone().unwrap_or(Value::Null);
                // Whose data the answer may hold: the caller and every stream appended to.
                let mut subjects: Vec<uuid::Uuid> =
                    appended.iter().map(|event| event.aggregate_id).collect();
                subjects.extend(request.actor.user_id());
                subjects.sort_unstable();
                subjects.dedup();
                transaction
                    .complete_idempotency(
                        &idempotency.scope,
                        &idempotency.key,
                        status.as_u16(),
                        (!C::ANSWER_HOLDS_CREDENTIALS).then_some(&body),
                        &subjects,
                    )
                    .await?;
            }
            Answer::Refused(_) => {
                transaction
                    .forget_idempotency(&idempotency.scope, &idempotency.key)
                    .await?;
            }
        }
    }
    Ok(answer)
}
