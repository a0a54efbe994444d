use clap::{Parser, Subcommand};
use query_api::{Application, Settings};

/// Eventra's query API: tenant-scoped reads of the user platform. Configured by environment
/// variables (see the README); the command line only picks what to do.
#[derive(Parser)]
#[command(name = "query-api", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API (the default).
    Serve,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve = Cli::parse().command.unwrap_or(Command::Serve);
    let settings = Settings::from_env()?;
    infra::telemetry::init(settings.log_json);
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
