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
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use `serve` (default) or `migrate`")
        }
    }
    Ok(())
}
