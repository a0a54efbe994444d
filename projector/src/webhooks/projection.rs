//! The `webhook-deliveries` projection. A webhook's own events keep its row in `rm_webhooks`
//! (what the query API lists, and what this projection matches later events against, as of
//! the event it is at: a webhook gets exactly the events after its creation, and none while
//! paused). Every other event of the tenant becomes one delivery per enabled webhook whose
//! filter takes its type; the pair (webhook, event) is unique, so a redelivered or re-applied
//! event queues nothing twice. It is never replayed: a replay would deliver everything again.

use deadpool_postgres::Object;
use domain::{DomainEvent, WebhookEvent};
use eventstore::RecordedEvent;

use crate::error::HandlerError;

pub async fn apply(client: &Object, event: &RecordedEvent) -> Result<(), HandlerError> {
    let domain = event
        .to_domain()
        .map_err(|e| HandlerError::Poison(e.to_string()))?;
    if let DomainEvent::Webhook {
        webhook_id,
        event: change,
    } = &domain
    {
        keep_webhook(client, event, *webhook_id, change).await?;
    }
    client
        .execute(
            "INSERT INTO webhook_deliveries (delivery_id, webhook_id, tenant_id, event_id, event_type, position)
             SELECT gen_random_uuid(), webhook_id, tenant_id, $2, $3, $4
               FROM rm_webhooks
              WHERE tenant_id = $1 AND enabled AND NOT deleted
                AND ('*' = ANY(event_types) OR $3 = ANY(event_types))
             ON CONFLICT (webhook_id, event_id) DO NOTHING",
            &[
                &event.tenant_id,
                &event.event_id,
                &event.event_type,
                &event.position,
            ],
        )
        .await
        .map_err(HandlerError::classify)?;
    Ok(())
}

async fn keep_webhook(
    client: &Object,
    event: &RecordedEvent,
    webhook_id: uuid::Uuid,
    change: &WebhookEvent,
) -> Result<(), HandlerError> {
    let result = match change {
        WebhookEvent::Created {
            url,
            event_types,
            description,
            secret_version,
            ..
        } => {
            client
                .execute(
                    "INSERT INTO rm_webhooks (webhook_id, tenant_id, url, event_types, description, enabled,
                                              secret_version, created_at, updated_at, position, enabled_at)
                     VALUES ($1, $2, $3, $4, $5, true, $6, $7, $7, $8, $7)
                     ON CONFLICT (webhook_id) DO NOTHING",
                    &[
                        &webhook_id,
                        &event.tenant_id,
                        url,
                        event_types,
                        description,
                        &i32::try_from(*secret_version).unwrap_or(i32::MAX),
                        &event.occurred_at,
                        &event.position,
                    ],
                )
                .await
        }
        WebhookEvent::Updated {
            url,
            event_types,
            enabled,
            ..
        } => {
            client
                .execute(
                    "UPDATE rm_webhooks
                        SET url = coalesce($2, url), event_types = coalesce($3, event_types),
                            enabled = coalesce($4, enabled),
                            disabled_reason = CASE WHEN $4 THEN NULL ELSE disabled_reason END,
                            enabled_at = CASE WHEN $4 THEN $5 ELSE enabled_at END,
                            updated_at = $5, position = $6
                      WHERE webhook_id = $1 AND position < $6",
                    &[
                        &webhook_id,
                        url,
                        event_types,
                        enabled,
                        &event.occurred_at,
                        &event.position,
                    ],
                )
                .await
        }
        WebhookEvent::SecretRotated { secret_version, .. } => {
            client
                .execute(
                    "UPDATE rm_webhooks SET secret_version = $2, updated_at = $3, position = $4
                      WHERE webhook_id = $1 AND position < $4",
                    &[
                        &webhook_id,
                        &i32::try_from(*secret_version).unwrap_or(i32::MAX),
                        &event.occurred_at,
                        &event.position,
                    ],
                )
                .await
        }
        WebhookEvent::Disabled {
            failing_since,
            last_error,
            ..
        } => {
            let reason = format!(
                "every attempt failed since {} ({last_error})",
                failing_since.format("%Y-%m-%d %H:%M UTC")
            );
            client
                .execute(
                    "UPDATE rm_webhooks SET enabled = false, disabled_reason = $2, updated_at = $3,
                            position = $4
                      WHERE webhook_id = $1 AND position < $4",
                    &[&webhook_id, &reason, &event.occurred_at, &event.position],
                )
                .await
        }
        WebhookEvent::Deleted { .. } => {
            client
                .execute(
                    "UPDATE rm_webhooks SET deleted = true, enabled = false, updated_at = $2, position = $3
                      WHERE webhook_id = $1 AND position < $3",
                    &[&webhook_id, &event.occurred_at, &event.position],
                )
                .await?;
            client
                .execute(
                    "UPDATE webhook_deliveries
                        SET status = 'discarded', lease_until = NULL, claim_token = NULL, updated_at = now()
                      WHERE webhook_id = $1 AND status IN ('pending', 'sending', 'dead')",
                    &[&webhook_id],
                )
                .await
        }
    };
    result.map_err(HandlerError::classify)?;
    Ok(())
}
