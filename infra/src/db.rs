//! The Postgres connection pool.

use std::str::FromStr;

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// How long a caller of [`pool`] waits for a free connection before the pool answers with
/// a timeout (workers and operator commands; the APIs configure their own, shorter wait).
pub const DEFAULT_POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds a pool for `database_url` (a `postgres://` URL or a key=value string).
pub fn pool(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    pool_waiting(database_url, max_size, DEFAULT_POOL_WAIT)
}

/// A pool whose callers wait at most `wait` for a connection (then a
/// `PoolError::Timeout`, which the APIs answer 503 with `Retry-After`).
pub fn pool_waiting(
    database_url: &str,
    max_size: usize,
    wait: std::time::Duration,
) -> anyhow::Result<Pool> {
    let mut config = tokio_postgres::Config::from_str(database_url)
        .context("DATABASE_URL is not a valid Postgres URL")?;
    if config.get_application_name().is_none() {
        config.application_name("eventra");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .build()
        .context("building the Postgres pool")
}

/// A connection of its own that listens on a channel: each notification's payload arrives on
/// `payloads` (delivered at the notifier's commit), which ends when the connection fails.
/// Dropping it closes the connection.
pub struct Listening {
    pub payloads: tokio::sync::mpsc::UnboundedReceiver<String>,
    _client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects to `database_url` and listens on `channel` (a fixed identifier, never input).
pub async fn listen(database_url: &str, channel: &str) -> Result<Listening, tokio_postgres::Error> {
    use futures_util::StreamExt as _;
    // Named, so that an operator (or a test) finds the listener in pg_stat_activity.
    let mut config = tokio_postgres::Config::from_str(database_url)?;
    config.application_name(format!("eventra-listen-{channel}"));
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, payloads) = tokio::sync::mpsc::unbounded_channel::<String>();
    let name = channel.to_owned();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(notification)) => {
                    if sender.send(notification.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, channel = %name, "a listening connection failed");
                    return;
                }
            }
        }
    });
    let listening = Listening {
        payloads,
        _client: client,
        driver,
    };
    listening
        ._client
        .batch_execute(&format!("LISTEN {channel}"))
        .await?;
    Ok(listening)
}

/// Creates the database named in `database_url` if it does not exist, by connecting to the
/// `postgres` maintenance database of the same server.
pub async fn create_database_if_missing(database_url: &str) -> anyhow::Result<()> {
    let config = tokio_postgres::Config::from_str(database_url)
        .context("DATABASE_URL is not a valid Postgres URL")?;
    let name = config
        .get_dbname()
        .context("DATABASE_URL names no database")?
        .to_owned();
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let (client, connection) = maintenance
        .connect(NoTls)
        .await
        .context("connecting to the postgres maintenance database")?;
    let connection = tokio::spawn(connection);
    // Several processes may start on a fresh server at once: a concurrent CREATE DATABASE
    // fails with "already exists", a unique violation in the catalog, or "template1 is being
    // accessed by other users"; look again and retry until the database is there.
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    let mut attempt = 0u64;
    loop {
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?
            .is_some();
        if exists {
            break;
        }
        match client.batch_execute(&statement).await {
            Ok(()) => break,
            Err(error) => {
                use tokio_postgres::error::SqlState;
                let racing = [
                    SqlState::DUPLICATE_DATABASE,
                    SqlState::UNIQUE_VIOLATION,
                    SqlState::OBJECT_IN_USE,
                ]
                .iter()
                .any(|code| error.code() == Some(code));
                attempt += 1;
                if !racing || attempt >= 20 {
                    return Err(error).context("creating the database");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
        }
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// A transaction on a pooled connection that can be held across `await`s and passed
/// around. Dropped without [`PgTransaction::commit`] (an error, a cancelled task), its
/// connection is closed rather than returned to the pool, so the server rolls it back.
pub struct PgTransaction {
    client: Option<Object>,
}

impl PgTransaction {
    pub async fn begin(pool: &Pool) -> Result<Self, BeginError> {
        let client = pool.get().await?;
        client.batch_execute("BEGIN").await?;
        Ok(PgTransaction {
            client: Some(client),
        })
    }

    /// The connection, inside the transaction.
    pub fn client(&self) -> &Object {
        match &self.client {
            Some(client) => client,
            None => unreachable!("a transaction is used only until commit or rollback"),
        }
    }

    pub async fn commit(mut self) -> Result<(), tokio_postgres::Error> {
        if let Some(client) = self.client.take()
            && let Err(error) = client.batch_execute("COMMIT").await
        {
            drop(Object::take(client));
            return Err(error);
        }
        Ok(())
    }

    pub async fn rollback(mut self) {
        if let Some(client) = self.client.take()
            && client.batch_execute("ROLLBACK").await.is_err()
        {
            drop(Object::take(client));
        }
    }
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Awaits requests made on one connection after polling each future once, in order:
/// tokio-postgres sends a request when its future is first polled, so every request goes
/// out before the first answer is awaited (one round trip for all of them), and Postgres
/// runs them in this order. Inside a transaction, a failure makes the later ones fail too.
/// Each future must send its request on its first poll (a prepared statement or a typed
/// query, not a statement that still has to be prepared).
pub async fn pipelined<F>(mut futures: Vec<std::pin::Pin<Box<F>>>) -> Vec<F::Output>
where
    F: std::future::Future + ?Sized,
{
    let mut answered = Vec::with_capacity(futures.len());
    std::future::poll_fn(|cx| {
        for future in &mut futures {
            answered.push(match future.as_mut().poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            });
        }
        std::task::Poll::Ready(())
    })
    .await;
    let mut outputs = Vec::with_capacity(futures.len());
    for (future, answer) in futures.into_iter().zip(answered) {
        outputs.push(match answer {
            Some(output) => output,
            None => future.await,
        });
    }
    outputs
}
