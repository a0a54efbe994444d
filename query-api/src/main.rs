use query_api::{Application, Settings};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    infra::telemetry::init(settings.log_json);
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
