//! Password reset requests, worked off the request path (ADR 0019). The command API only
//! queues a request and answers 202; here each is taken in the transaction that handles it:
//! the address is looked up by its blind index, and an account that may reset gets
//! `user.password_reset_requested` with a new link whose token is kept sealed until its
//! email is sent. An address without an account, a stale request, or one asked again within
//! the minute ends without a trace but the log. A request whose handling fails goes back to
//! the queue with the rolled-back transaction and is tried again on the next round, until it
//! is older than a link would live.

use chrono::{Duration, Utc};
use domain::User;
use domain::values::normalise_email;
use eventstore::{Changes, EMAIL, EventMetadata, EventStore};
use infra::crypto::LinkToken;
use infra::email_jobs::{EmailSecret, LinkPurpose};
use infra::password_resets::ResetRequest;
use tracing::Instrument;

/// The source named in the metadata of the events appended here.
pub const SOURCE: &str = "eventra-password-resets";

/// Handles up to `limit` queued requests; answers how many were taken.
pub async fn work_off(store: &EventStore, ttl: Duration, limit: usize) -> anyhow::Result<usize> {
    let mut handled = 0;
    while handled < limit && handle_one(store, ttl).await? {
        handled += 1;
    }
    Ok(handled)
}

/// Takes and handles the oldest request; `false` when none waits.
async fn handle_one(store: &EventStore, ttl: Duration) -> anyhow::Result<bool> {
    let transaction = store.begin().await?;
    let Some(request) = transaction.take_password_reset_request().await? else {
        transaction.rollback().await;
        return Ok(false);
    };
    let span = tracing::info_span!(
        "password_reset_request",
        request_id = %request.request_id,
        tenant_id = %request.tenant_id,
        correlation_id = request.correlation_id.as_deref().unwrap_or(""),
    );
    handle(transaction, request, ttl).instrument(span).await?;
    Ok(true)
}

async fn handle(
    transaction: eventstore::Transaction,
    request: ResetRequest,
    ttl: Duration,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let outcome = if now - request.requested_at > ttl {
        "stale"
    } else if let Some(email) = &request.email {
        let hash = transaction
            .keys()
            .blind_index(EMAIL, &normalise_email(email));
        let reader = transaction.reader();
        match reader
            .reservation_owner(request.tenant_id, EMAIL, &hash)
            .await?
        {
            None => "no_account",
            Some(user_id) => {
                let user = reader.load::<User>(user_id).await?;
                let link =
                    LinkToken::new(user_id).map_err(|e| anyhow::anyhow!("no randomness: {e:?}"))?;
                let expires_at = now + ttl;
                let events = domain::links::request_password_reset(
                    &user.state,
                    link.hash.clone(),
                    expires_at,
                    now,
                );
                if events.is_empty() {
                    "not_sent"
                } else {
                    let metadata = EventMetadata {
                        source: SOURCE.to_owned(),
                        correlation_id: request.correlation_id.clone(),
                        actor_id: None,
                        ..EventMetadata::default()
                    };
                    let appended = transaction
                        .append(
                            Changes::new(request.tenant_id, now).appending(&user, events),
                            &metadata,
                        )
                        .await?;
                    transaction
                        .forget_email_secrets(user_id, LinkPurpose::PasswordReset)
                        .await?;
                    if let Some(event) = appended.first() {
                        transaction
                            .keep_email_secret(&EmailSecret {
                                event_id: event.event_id,
                                tenant_id: request.tenant_id,
                                aggregate_id: user_id,
                                purpose: LinkPurpose::PasswordReset,
                                token: &link.token,
                                expires_at,
                            })
                            .await?;
                        tracing::info!(%user_id, event_id = %event.event_id, position = event.position, "password reset link issued");
                    }
                    "link_sent"
                }
            }
        }
    } else {
        "unreadable"
    };
    transaction.commit().await?;
    metrics::counter!("eventra_password_reset_requests_total", "outcome" => outcome).increment(1);
    tracing::info!(outcome, "password reset request handled");
    Ok(())
}
