//! Operator commands run from the command line (`command-api grant-platform-admin <user
//! id>`, `command-api set-rate-limit <tenant id> <limit>`), through the same pipeline as
//! the API's commands.

use std::sync::Arc;

use eventstore::EventStore;
use infra::crypto::KeyRing;
use uuid::Uuid;

use crate::commands::grant_platform_admin::GrantPlatformAdmin;
use crate::commands::set_rate_limit::SetRateLimit;
use crate::pipeline::{Answer, Command, Request, execute};
use crate::settings::Settings;

/// What operator commands' events name as their source.
const SOURCE: &str = "command-api operator";

/// Makes an existing user a platform administrator. Returns the event position (or the
/// stream's last position when they already were one).
pub async fn grant_platform_admin(settings: &Settings, user_id: Uuid) -> anyhow::Result<i64> {
    run(settings, &GrantPlatformAdmin { user_id }).await
}

/// Overrides a tenant's request limit (`None`: back to its plan's). Returns the event's
/// position (or the stream's last position when nothing changed).
pub async fn set_rate_limit(
    settings: &Settings,
    tenant_id: Uuid,
    requests_per_hour: Option<u32>,
) -> anyhow::Result<i64> {
    run(
        settings,
        &SetRateLimit {
            tenant_id,
            requests_per_hour,
        },
    )
    .await
}

/// Runs an operator command against the configured database (migrated first) and answers
/// the position it reports.
async fn run<C: Command>(settings: &Settings, command: &C) -> anyhow::Result<i64> {
    infra::migrate::migrate_database(&settings.database_url).await?;
    let pool = infra::db::pool(&settings.database_url, 2)?;
    let store = EventStore::new(pool, Arc::new(KeyRing::new(settings.load_master_key()?)));
    let answer = execute(&store, 0, &Request::tool(SOURCE), command)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    match answer {
        Answer::Refused(error) => Err(anyhow::anyhow!("{error}")),
        answer => answer
            .body()
            .and_then(|body| body["position"].as_i64())
            .ok_or_else(|| anyhow::anyhow!("the command answered no position")),
    }
}
