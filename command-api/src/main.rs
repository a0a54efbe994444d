use command_api::{Application, Settings};

/// `command-api` serves; `command-api migrate` only migrates the database;
/// `command-api grant-platform-admin <user id>` makes a user a platform administrator;
/// `command-api set-rate-limit <tenant id> <requests per hour | plan>` overrides a tenant's
/// request limit (or returns it to its plan's).
#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    infra::telemetry::init(settings.log_json);
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Some("migrate") => {
            let applied = infra::migrate::migrate_database(&settings.database_url).await?;
            tracing::info!(?applied, "database migrated");
        }
        Some("grant-platform-admin") => {
            let user_id = std::env::args()
                .nth(2)
                .and_then(|id| uuid::Uuid::try_parse(&id).ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("usage: command-api grant-platform-admin <user id>")
                })?;
            let position = command_api::operator::grant_platform_admin(&settings, user_id).await?;
            println!(
                "user {user_id} is a platform administrator (position {position}); they log in as usual"
            );
        }
        Some("set-rate-limit") => {
            let usage = "usage: command-api set-rate-limit <tenant id> <requests per hour | plan>";
            let tenant_id = std::env::args()
                .nth(2)
                .and_then(|id| uuid::Uuid::try_parse(&id).ok())
                .ok_or_else(|| anyhow::anyhow!(usage))?;
            let limit = match std::env::args().nth(3).as_deref() {
                Some("plan") => None,
                Some(number) => Some(number.parse::<u32>().map_err(|_| anyhow::anyhow!(usage))?),
                None => anyhow::bail!(usage),
            };
            let position =
                command_api::operator::set_rate_limit(&settings, tenant_id, limit).await?;
            match limit {
                Some(limit) => println!(
                    "tenant {tenant_id} may make {limit} requests an hour (position {position})"
                ),
                None => println!(
                    "tenant {tenant_id} is back to its plan's request limit (position {position})"
                ),
            }
        }
        Some(other) => anyhow::bail!(
            "unknown command {other:?}; use `serve` (default), `migrate`, `grant-platform-admin <user id>` or `set-rate-limit <tenant id> <requests per hour | plan>`"
        ),
    }
    Ok(())
}
