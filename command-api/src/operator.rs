//! Operator commands run from the command line (`command-api grant-platform-admin <user id>`).

use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use domain::DomainEvent;
use infra::crypto::KeyRing;
use infra::envelope::EventMetadata;
use infra::store::{EventStore, ExpectedVersion};
use uuid::Uuid;

use crate::settings::Settings;
use crate::state;

/// Makes an existing user a platform administrator, as an event on their stream. The user
/// logs in as usual; their tokens then carry global oversight. Returns the event position
/// (or the stream's last position when they already were one).
pub async fn grant_platform_admin(settings: &Settings, user_id: Uuid) -> anyhow::Result<i64> {
    infra::migrate::migrate_database(&settings.database_url).await?;
    let pool = infra::db::pool(&settings.database_url, 2)?;
    let store = EventStore::new(pool, Arc::new(KeyRing::new(settings.load_master_key()?)));
    let unit = store.begin().await?;
    let user = state::user(&unit, user_id).await?;
    let tenant_id = user
        .state
        .tenant_id
        .filter(|_| user.state.is_present())
        .with_context(|| format!("no user {user_id}"))?;
    let events = domain::user::grant_platform_admin(&user.state)?;
    let appended = unit
        .append(
            tenant_id,
            &[ExpectedVersion {
                aggregate_id: user_id,
                version: user.version,
            }],
            &DomainEvent::user(user_id, events),
            &EventMetadata {
                source: "command-api operator".into(),
                ..Default::default()
            },
            Utc::now(),
        )
        .await?;
    unit.commit().await?;
    Ok(appended.last().map_or(user.last_position, |e| e.position))
}

/// Overrides a tenant's request limit (`None`: back to its plan's), as an event on the
/// tenant's stream, so the change is audited. Returns the event's position (or the stream's
/// last position when nothing changed).
pub async fn set_rate_limit(
    settings: &Settings,
    tenant_id: Uuid,
    requests_per_hour: Option<u32>,
) -> anyhow::Result<i64> {
    infra::migrate::migrate_database(&settings.database_url).await?;
    let pool = infra::db::pool(&settings.database_url, 2)?;
    let store = EventStore::new(pool, Arc::new(KeyRing::new(settings.load_master_key()?)));
    let unit = store.begin().await?;
    let tenant = state::tenant(&unit, tenant_id).await?;
    let events = domain::tenant::set_rate_limit(&tenant.state, requests_per_hour)?;
    let appended = unit
        .append(
            tenant_id,
            &[ExpectedVersion {
                aggregate_id: tenant_id,
                version: tenant.version,
            }],
            &events
                .into_iter()
                .map(|event| DomainEvent::Tenant { tenant_id, event })
                .collect::<Vec<_>>(),
            &EventMetadata {
                source: "command-api operator".into(),
                ..Default::default()
            },
            Utc::now(),
        )
        .await?;
    unit.commit().await?;
    Ok(appended.last().map_or(tenant.last_position, |e| e.position))
}
