use clap::{Parser, Subcommand};
use command_api::{Application, Settings};
use uuid::Uuid;

/// Eventra's command API: the write side of the user platform. Configured by environment
/// variables (see the README); the command line only picks what to do.
#[derive(Parser)]
#[command(name = "command-api", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Make an existing user a platform administrator (they log in as usual).
    GrantPlatformAdmin {
        #[arg(value_parser = user_id)]
        user_id: Uuid,
    },
    /// Override a tenant's request limit, or return it to its plan's.
    SetRateLimit {
        #[arg(value_parser = tenant_id)]
        tenant_id: Uuid,
        /// Requests per hour, or `plan`.
        #[arg(value_parser = limit)]
        limit: Limit,
    },
}

/// A request limit: a number, or the plan's.
#[derive(Clone, Copy)]
struct Limit(Option<u32>);

fn user_id(text: &str) -> Result<Uuid, String> {
    Uuid::try_parse(text)
        .map_err(|_| "not a user id; usage: command-api grant-platform-admin <user id>".into())
}

fn tenant_id(text: &str) -> Result<Uuid, String> {
    Uuid::try_parse(text).map_err(|_| {
        "not a tenant id; usage: command-api set-rate-limit <tenant id> <requests per hour | plan>"
            .into()
    })
}

fn limit(text: &str) -> Result<Limit, String> {
    match text {
        "plan" => Ok(Limit(None)),
        number => number.parse().map(|n| Limit(Some(n))).map_err(|_| {
            "not a number of requests per hour or `plan`; usage: command-api set-rate-limit <tenant id> <requests per hour | plan>".into()
        }),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    infra::telemetry::init(settings.log_json);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Migrate => {
            let applied = infra::migrate::migrate_database(&settings.database_url).await?;
            tracing::info!(?applied, "database migrated");
        }
        Command::GrantPlatformAdmin { user_id } => {
            let position = command_api::operator::grant_platform_admin(&settings, user_id).await?;
            println!(
                "user {user_id} is a platform administrator (position {position}); they log in as usual"
            );
        }
        Command::SetRateLimit {
            tenant_id,
            limit: Limit(limit),
        } => {
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
    }
    Ok(())
}
