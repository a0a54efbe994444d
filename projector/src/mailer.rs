//! Where emails go: an SMTP server (`SMTP_URL`), or, with no configuration, `.eml` files
//! under `EVENTRA_DATA_DIR/mail/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use uuid::Uuid;

pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The URL without credentials, for logs and readiness.
        endpoint: String,
        /// The bound on one whole send (`SMTP_TIMEOUT_SECS`).
        timeout: Duration,
    },
    Files(PathBuf),
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Connection refused, timeout, an SMTP 4xx answer: retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// An SMTP 5xx answer or an address that cannot be mailed: the job is dead.
    #[error("{0}")]
    Permanent(String),
}

impl Mailer {
    /// `smtp://[user:password@]host:port[?tls=required|opportunistic]` or `smtps://…`
    /// (lettre's connection URLs); `None` writes files into `mail_dir`.
    pub fn new(
        smtp_url: Option<&str>,
        mail_dir: PathBuf,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("SMTP_URL is not a valid SMTP connection URL")?
                    .timeout(Some(timeout))
                    .build();
                Ok(Mailer::Smtp {
                    transport,
                    endpoint: without_credentials(url),
                    timeout,
                })
            }
            None => Ok(Mailer::Files(mail_dir)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { endpoint, .. } => endpoint.clone(),
            Mailer::Files(dir) => format!("files in {}", dir.display()),
        }
    }

    pub async fn send(&self, job_id: Uuid, message: &Message) -> Result<(), SendError> {
        match self {
            // The transport's own timeout bounds connecting and socket reads, but a server
            // that takes the message and never answers held a send forever: the whole send
            // is bounded too.
            Mailer::Smtp {
                transport, timeout, ..
            } => match tokio::time::timeout(*timeout, transport.send(message.clone())).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) if error.is_permanent() => {
                    Err(SendError::Permanent(error.to_string()))
                }
                Ok(Err(error)) => Err(SendError::Transient(error.to_string())),
                Err(_) => Err(SendError::Transient(format!(
                    "the SMTP server did not answer within {timeout:?}"
                ))),
            },
            Mailer::Files(dir) => {
                let formatted = message.formatted();
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    std::fs::create_dir_all(&dir)?;
                    let partial = dir.join(format!(".{job_id}.eml.partial"));
                    std::fs::write(&partial, formatted)?;
                    // A re-send after a crash overwrites the same file: one file per job.
                    std::fs::rename(&partial, dir.join(format!("{job_id}.eml")))
                })
                .await
                .map_err(|e| SendError::Transient(e.to_string()))?
                .map_err(|e| SendError::Transient(format!("writing the mail file failed: {e}")))
            }
        }
    }

    /// Whether the SMTP server answers (readiness); files are always ready.
    pub async fn probe(&self) -> Result<(), String> {
        match self {
            Mailer::Smtp {
                transport, timeout, ..
            } => match tokio::time::timeout(*timeout, transport.test_connection()).await {
                Ok(Ok(true)) => Ok(()),
                Ok(Ok(false)) => Err("the SMTP server did not accept a connection".into()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("the SMTP server did not answer within {timeout:?}")),
            },
            Mailer::Files(_) => Ok(()),
        }
    }
}

fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_logs() {
        assert_eq!(
            without_credentials("smtp://user:secret@mail.example:587?tls=required"),
            "smtp://mail.example:587?tls=required"
        );
        assert_eq!(
            without_credentials("smtp://127.0.0.1:2525"),
            "smtp://127.0.0.1:2525"
        );
    }

    #[tokio::test]
    async fn an_unparsable_url_is_a_configuration_error() {
        assert!(Mailer::new(Some("not a url"), PathBuf::new(), Duration::from_secs(1)).is_err());
        assert!(
            Mailer::new(
                Some("smtp://127.0.0.1:2525"),
                PathBuf::new(),
                Duration::from_secs(1)
            )
            .is_ok()
        );
    }
}
