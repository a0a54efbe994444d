use command_api::{Application, Settings};

/// `command-api` serves; `command-api migrate` only migrates the database;
/// `command-api grant-platform-admin <user id>` makes a user a platform administrator.
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
        Some(other) => anyhow::bail!(
            "unknown command {other:?}; use `serve` (default), `migrate` or `grant-platform-admin <user id>`"
        ),
    }
    Ok(())
}
