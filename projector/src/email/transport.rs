//! Where emails go: an SMTP server (`SMTP_URL`), or, with no configuration, `.eml` files
//! under `EVENTRA_DATA_DIR/mail/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
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
    /// (lettre's connection URLs); `None` writes files into `mail_dir`. The server's
    /// certificate is checked against the public web's roots, or against the certificates in
    /// `ca_file` (PEM) for a server with a certificate of an organisation's own CA.
    pub fn new(
        smtp_url: Option<&str>,
        mail_dir: PathBuf,
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("SMTP_URL is not a valid SMTP connection URL")?
                    .timeout(Some(timeout));
                if let Some(ca_file) = ca_file {
                    builder = builder.tls(tls_with_ca(url, ca_file)?);
                }
                let transport = builder.build();
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
                // A server's answer often quotes the recipient's address: the reason kept
                // (logged, and stored with the job) names no address.
                Ok(Err(error)) if error.is_permanent() => {
                    Err(SendError::Permanent(without_addresses(&error.to_string())))
                }
                Ok(Err(error)) => Err(SendError::Transient(without_addresses(&error.to_string()))),
                Err(_) => Err(SendError::Transient(format!(
                    "the SMTP server did not answer within {timeout:?}"
                ))),
            },
            Mailer::Files(dir) => {
                let formatted = message.formatted();
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || super::files::write(&dir, job_id, &formatted))
                    .await
                    .map_err(|e| SendError::Transient(e.to_string()))?
                    .map_err(|e| SendError::Transient(format!("writing the mail file failed: {e}")))
            }
        }
    }

    /// Deletes the mail files older than `retention` (files only; a server keeps nothing
    /// here).
    pub async fn forget_old_files(&self, retention: Duration) -> std::io::Result<usize> {
        match self {
            Mailer::Smtp { .. } => Ok(0),
            Mailer::Files(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    super::files::forget_older_than(&dir, retention)
                })
                .await
                .map_err(std::io::Error::other)?
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

/// How `url` asks for TLS, as lettre reads it: `smtps` wraps the connection, `tls=required`
/// and `tls=opportunistic` upgrade it with STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    Wrapper,
    Required,
    Opportunistic,
}

fn tls_mode(url: &str) -> TlsMode {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let tls = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("tls="))
        .unwrap_or_default();
    if url.starts_with("smtps://") {
        TlsMode::Wrapper
    } else if tls == "required" {
        TlsMode::Required
    } else if tls == "opportunistic" {
        TlsMode::Opportunistic
    } else {
        TlsMode::None
    }
}

/// The host part of an SMTP URL: the name the server's certificate must carry.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// The URL's TLS mode, with the certificates of `ca_file` as the only trusted roots.
fn tls_with_ca(url: &str, ca_file: &std::path::Path) -> anyhow::Result<Tls> {
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("reading SMTP_CA_FILE {}", ca_file.display()))?;
    let certificate = Certificate::from_pem(&pem).with_context(|| {
        format!(
            "SMTP_CA_FILE {} holds no PEM certificate",
            ca_file.display()
        )
    })?;
    let parameters = TlsParameters::builder(host_of(url).to_owned())
        .add_root_certificate(certificate)
        .build_rustls()
        .context("the TLS settings for SMTP")?;
    Ok(match tls_mode(url) {
        TlsMode::Wrapper => Tls::Wrapper(parameters),
        TlsMode::Required => Tls::Required(parameters),
        TlsMode::Opportunistic => Tls::Opportunistic(parameters),
        TlsMode::None => anyhow::bail!(
            "SMTP_CA_FILE is set but SMTP_URL asks for no TLS (use smtps:// or ?tls=required)"
        ),
    })
}

fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// What the logs keep of a send error: an SMTP server's answer (`permanent error (550):
/// 5.1.1 …`) up to its codes, without the free text, which may quote the recipient in any
/// form (a name, a mailbox); the job keeps the whole answer, addresses removed, until the
/// recipient is erased. Other errors (connection, TLS, timeouts) are kept whole.
pub fn for_logs(error: &str) -> String {
    let Some(open) = error.find('(') else {
        return error.to_owned();
    };
    let rest = &error[open..];
    let is_reply = rest.len() >= 5
        && rest.as_bytes()[1..4].iter().all(u8::is_ascii_digit)
        && rest.as_bytes()[4] == b')';
    if !is_reply {
        return error.to_owned();
    }
    let after_code = &rest[5..];
    let trimmed = after_code.trim_start_matches([':', ' ']);
    let enhanced: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut kept = error[..open + 5].to_owned();
    if enhanced.matches('.').count() == 2 {
        kept.push_str(": ");
        kept.push_str(&enhanced);
    }
    kept.push_str(" [server text withheld]");
    kept
}

/// `text` with every email address in it (`grace@acme.example`, `<grace@acme.example>`)
/// replaced by `<address>`.
pub fn without_addresses(text: &str) -> String {
    let is_address_char =
        |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '\'' | '=');
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        if chars[index] == '@' {
            // Take back the local part already copied, skip the domain.
            let mut start = out.len();
            for c in out.chars().rev() {
                if !is_address_char(c) {
                    break;
                }
                start -= c.len_utf8();
            }
            out.truncate(start);
            out.push_str("<address>");
            index += 1;
            while index < chars.len()
                && (is_address_char(chars[index])
                    || chars[index] == '['
                    || chars[index] == ']'
                    || chars[index] == ':')
            {
                index += 1;
            }
            continue;
        }
        out.push(chars[index]);
        index += 1;
    }
    out
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

    #[test]
    fn a_servers_answer_keeps_no_address() {
        assert_eq!(
            without_addresses(
                "permanent error (550): 5.1.1 <Grace.Hopper+x@acme.example>: Recipient address rejected"
            ),
            "permanent error (550): 5.1.1 <<address>>: Recipient address rejected"
        );
        assert_eq!(
            without_addresses("mailbox grace@acme.example full, and ada@[192.0.2.1] too"),
            "mailbox <address> full, and <address> too"
        );
        assert_eq!(
            without_addresses("connection refused"),
            "connection refused"
        );
        assert_eq!(
            for_logs("permanent error (550): 5.1.1 <<address>>: Quinn Vantablack unknown"),
            "permanent error (550): 5.1.1 [server text withheld]"
        );
        assert_eq!(
            for_logs("transient error (421): mailbox of Quinn busy"),
            "transient error (421) [server text withheld]"
        );
        assert_eq!(
            for_logs("connection refused (os error 111)"),
            "connection refused (os error 111)"
        );
    }

    #[tokio::test]
    async fn an_unparsable_url_is_a_configuration_error() {
        assert!(
            Mailer::new(
                Some("not a url"),
                PathBuf::new(),
                Duration::from_secs(1),
                None
            )
            .is_err()
        );
        assert!(
            Mailer::new(
                Some("smtp://127.0.0.1:2525"),
                PathBuf::new(),
                Duration::from_secs(1),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn the_tls_mode_and_the_certificate_name_come_from_the_url() {
        assert_eq!(tls_mode("smtps://mail.example:465"), TlsMode::Wrapper);
        assert_eq!(
            tls_mode("smtp://u:p@mail.example:587?tls=required"),
            TlsMode::Required
        );
        assert_eq!(
            tls_mode("smtp://mail.example?tls=opportunistic"),
            TlsMode::Opportunistic
        );
        assert_eq!(tls_mode("smtp://mail.example:25"), TlsMode::None);
        assert_eq!(
            host_of("smtp://u:p@mail.example:587?tls=required"),
            "mail.example"
        );
        assert_eq!(host_of("smtps://127.0.0.1:465"), "127.0.0.1");
        assert_eq!(host_of("smtp://[::1]:25"), "::1");
        assert_eq!(host_of("smtp://relay"), "relay");
    }

    #[tokio::test]
    async fn a_ca_file_is_refused_for_a_connection_without_tls_or_without_certificates() {
        let dir = std::env::temp_dir().join(format!("eventra-ca-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here").expect("write");
        let missing = dir.join("missing.pem");
        for (url, file) in [
            ("smtps://127.0.0.1:465", missing.as_path()),
            ("smtp://127.0.0.1:25", empty.as_path()),
        ] {
            assert!(
                Mailer::new(
                    Some(url),
                    PathBuf::new(),
                    Duration::from_secs(1),
                    Some(file)
                )
                .is_err(),
                "{url} with {}",
                file.display()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
