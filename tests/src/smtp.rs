//! A small SMTP server for tests: it speaks real SMTP over TCP on loopback (in the clear,
//! with STARTTLS, or wrapped in TLS), records what it receives, and can be told to answer
//! 4xx or 5xx, to stall, or to go away and come back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A message as the server took it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// Whether the message came over TLS.
    pub tls: bool,
}

impl Received {
    /// A header's value as sent: folded lines joined, encoded words left as they are.
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = self.data.lines().take_while(|line| !line.is_empty());
        let first = lines.find(|line| line.to_ascii_lowercase().starts_with(&prefix))?;
        let mut value = first[prefix.len()..].trim().to_owned();
        for line in lines.take_while(|line| line.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(line.trim());
        }
        Some(value)
    }

    /// The subject as a reader sees it: RFC 2047 encoded words (`=?utf-8?b?…?=`) decoded.
    pub fn subject(&self) -> String {
        decode_words(&self.header("Subject").unwrap_or_default())
    }

    pub fn message_id(&self) -> String {
        self.header("Message-ID").unwrap_or_default()
    }

    /// The message as text: quoted-printable soft breaks and escapes undone (enough to read
    /// what a test looks for, such as a link).
    pub fn text(&self) -> String {
        let joined = self.data.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escape = (bytes[i] == b'=' && i + 2 < bytes.len())
                .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
                .flatten()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            match escape {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The value of the first `token=` query parameter in the message's links.
    pub fn link_token(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("?token=")? + "?token=".len();
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        (!token.is_empty()).then_some(token)
    }
}

#[derive(Default)]
struct Script {
    received: Vec<Received>,
    /// Answers to give to the next transactions' `MAIL FROM` instead of 250.
    mail_answers: VecDeque<String>,
    /// Recipients (by substring) answered with this instead of 250.
    rejected: Vec<(String, String)>,
    /// Take the next message's data, then never answer it.
    stall_next_data: bool,
    connections: usize,
}

/// How a server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `STARTTLS` is offered, and required before `MAIL`.
    StartTls,
    /// The connection is TLS from its first byte (`smtps`).
    Implicit,
}

/// A server certificate for 127.0.0.1, issued by a CA of the test's own.
pub struct TestCertificates {
    dir: crate::TempDir,
    acceptor: TlsAcceptor,
}

impl TestCertificates {
    /// Makes a CA and a server certificate signed by it with the `openssl` tool.
    pub fn generate() -> TestCertificates {
        let dir = crate::TempDir::new("eventra-tls");
        std::fs::create_dir_all(&dir).expect("certificate dir");
        let openssl = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir.0)
                .output()
                .expect("run openssl");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Eventra Test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("server.pem"))
                .expect("server.pem")
                .collect::<Result<_, _>>()
                .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        TestCertificates {
            dir,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }

    /// The CA's certificate (PEM), for the client to trust.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.join("ca.pem")
    }
}

pub struct SmtpServer {
    pub port: u16,
    script: Arc<Mutex<Script>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
    tls: Option<(TlsAcceptor, TlsMode)>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        Self::start_with(None).await
    }

    /// A server speaking TLS with `certificates`' server certificate.
    pub async fn start_tls(certificates: &TestCertificates, mode: TlsMode) -> SmtpServer {
        Self::start_with(Some((certificates.acceptor.clone(), mode))).await
    }

    async fn start_with(tls: Option<(TlsAcceptor, TlsMode)>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let server = SmtpServer {
            port,
            script: Arc::default(),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
            tls,
        };
        server.serve(listener);
        server
    }

    /// The URL a client uses: `smtps://` for implicit TLS, `?tls=required` for STARTTLS.
    pub fn url(&self) -> String {
        match &self.tls {
            None => format!("smtp://127.0.0.1:{}", self.port),
            Some((_, TlsMode::StartTls)) => format!("smtp://127.0.0.1:{}?tls=required", self.port),
            Some((_, TlsMode::Implicit)) => format!("smtps://127.0.0.1:{}", self.port),
        }
    }

    /// How many connections the server accepted.
    pub fn connections(&self) -> usize {
        self.script.lock().expect("script").connections
    }

    fn serve(&self, listener: TcpListener) {
        let script = Arc::clone(&self.script);
        let tasks = Arc::clone(&self.tasks);
        let accept_tasks = Arc::clone(&self.tasks);
        let tls = self.tls.clone();
        tasks.lock().expect("tasks").spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = Arc::clone(&script);
                script.lock().expect("script").connections += 1;
                let tls = tls.clone();
                accept_tasks.lock().expect("tasks").spawn(async move {
                    let _ = match tls {
                        None => session(Box::new(stream), script, None, false).await,
                        Some((acceptor, TlsMode::StartTls)) => {
                            session(Box::new(stream), script, Some(acceptor), false).await
                        }
                        Some((acceptor, TlsMode::Implicit)) => {
                            match acceptor.accept(stream).await {
                                Ok(stream) => session(Box::new(stream), script, None, true).await,
                                Err(error) => Err(error),
                            }
                        }
                    };
                });
            }
        });
    }

    /// The server goes away: the port refuses connections, open ones are cut.
    pub fn stop(&self) {
        self.tasks.lock().expect("tasks").abort_all();
    }

    /// The server comes back on the same port.
    pub async fn restart(&self) {
        self.stop();
        let mut last_error = None;
        for _ in 0..50 {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => {
                    self.serve(listener);
                    return;
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not rebind the SMTP port: {last_error:?}");
    }

    /// The next `count` transactions get `answer` (e.g. `421 4.3.2 try again later`) to
    /// `MAIL FROM`, and the connection is closed as a busy server does.
    pub fn answer_next(&self, count: usize, answer: &str) {
        let mut script = self.script.lock().expect("script");
        for _ in 0..count {
            script.mail_answers.push_back(answer.to_owned());
        }
    }

    /// Recipients containing `pattern` get `answer` (e.g. `550 5.1.1 no such user`).
    pub fn reject_recipients(&self, pattern: &str, answer: &str) {
        self.script
            .lock()
            .expect("script")
            .rejected
            .push((pattern.to_owned(), answer.to_owned()));
    }

    pub fn accept_everyone(&self) {
        self.script.lock().expect("script").rejected.clear();
    }

    /// The next message's data is taken but never answered.
    pub fn stall_next_data(&self) {
        self.script.lock().expect("script").stall_next_data = true;
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().expect("script").received.clone()
    }

    pub fn received_by(&self, address: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits until `address` got at least `count` messages (up to `timeout`).
    pub async fn wait_for(&self, address: &str, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.received_by(address);
            if messages.len() >= count || tokio::time::Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn address_of(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].trim().to_owned()
}

/// A connection, in the clear or in TLS.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

type Session = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

/// One SMTP session. With `starttls`, STARTTLS is offered and required before `MAIL`; after
/// it the session goes on inside TLS without a new greeting. `secure` says whether the
/// connection is TLS already.
fn session(
    stream: Box<dyn Connection>,
    script: Arc<Mutex<Script>>,
    starttls: Option<TlsAcceptor>,
    secure: bool,
) -> Session {
    Box::pin(async move {
        let mut lines = BufReader::new(stream);
        lines
            .get_mut()
            .write_all(b"220 eventra-test ESMTP\r\n")
            .await?;
        converse(lines, script, starttls, secure).await
    })
}

fn converse(
    mut lines: BufReader<Box<dyn Connection>>,
    script: Arc<Mutex<Script>>,
    starttls: Option<TlsAcceptor>,
    secure: bool,
) -> Session {
    Box::pin(async move {
        let mut from = String::new();
        let mut to: Vec<String> = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let verb = command
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let write = lines.get_mut();
            match verb.as_str() {
                "EHLO" => {
                    let offer = if starttls.is_some() && !secure {
                        "250-STARTTLS\r\n"
                    } else {
                        ""
                    };
                    write
                        .write_all(
                            format!("250-eventra-test\r\n{offer}250-8BITMIME\r\n250 SMTPUTF8\r\n")
                                .as_bytes(),
                        )
                        .await?
                }
                "HELO" => write.write_all(b"250 eventra-test\r\n").await?,
                "STARTTLS" => match &starttls {
                    Some(acceptor) if !secure => {
                        write.write_all(b"220 2.0.0 ready to start TLS\r\n").await?;
                        write.flush().await?;
                        let stream = lines.into_inner();
                        let stream = acceptor.accept(stream).await?;
                        return converse(
                            BufReader::new(Box::new(stream)),
                            script,
                            starttls.clone(),
                            true,
                        )
                        .await;
                    }
                    _ => write.write_all(b"502 5.5.1 TLS not available\r\n").await?,
                },
                "MAIL" if starttls.is_some() && !secure => {
                    write
                        .write_all(b"530 5.7.0 must issue a STARTTLS command first\r\n")
                        .await?
                }
                "MAIL" => {
                    let answer = script.lock().expect("script").mail_answers.pop_front();
                    if let Some(answer) = answer {
                        write.write_all(format!("{answer}\r\n").as_bytes()).await?;
                        if answer.starts_with("421") {
                            return Ok(());
                        }
                        continue;
                    }
                    from = address_of(&command[4..]);
                    to.clear();
                    write.write_all(b"250 2.1.0 OK\r\n").await?;
                }
                "RCPT" => {
                    let address = address_of(&command[4..]);
                    let rejection = script
                        .lock()
                        .expect("script")
                        .rejected
                        .iter()
                        .find(|(pattern, _)| address.contains(pattern.as_str()))
                        .map(|(_, answer)| answer.clone());
                    match rejection {
                        Some(answer) => write.write_all(format!("{answer}\r\n").as_bytes()).await?,
                        None => {
                            to.push(address);
                            write.write_all(b"250 2.1.5 OK\r\n").await?;
                        }
                    }
                }
                "DATA" => {
                    write
                        .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await? == 0 {
                            return Ok(());
                        }
                        if line.trim_end_matches(['\r', '\n']) == "." {
                            break;
                        }
                        let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                        data.push_str(&unstuffed.replace("\r\n", "\n"));
                    }
                    let stall = {
                        let mut script = script.lock().expect("script");
                        script.received.push(Received {
                            from: from.clone(),
                            to: to.clone(),
                            data,
                            tls: secure,
                        });
                        std::mem::take(&mut script.stall_next_data)
                    };
                    if stall {
                        std::future::pending::<()>().await;
                    }
                    lines.get_mut().write_all(b"250 2.0.0 queued\r\n").await?;
                }
                "RSET" => {
                    from.clear();
                    to.clear();
                    write.write_all(b"250 2.0.0 OK\r\n").await?;
                }
                "NOOP" => write.write_all(b"250 2.0.0 OK\r\n").await?,
                "QUIT" => {
                    write.write_all(b"221 2.0.0 bye\r\n").await?;
                    return Ok(());
                }
                _ => write.write_all(b"502 5.5.2 not implemented\r\n").await?,
            }
        }
    })
}

/// Decodes the RFC 2047 encoded words of a header value (base64 `b` and quoted-printable
/// `q`, UTF-8); whitespace between two encoded words is dropped, as the RFC says, and their
/// bytes are joined before decoding (a character may be split between two words).
fn decode_words(value: &str) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        let word = token
            .strip_prefix("=?")
            .and_then(|rest| rest.strip_suffix("?="))
            .and_then(|inner| {
                let mut parts = inner.splitn(3, '?');
                let (_charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
                match encoding.to_ascii_lowercase().as_str() {
                    "b" => base64::engine::general_purpose::STANDARD.decode(text).ok(),
                    "q" => Some(quoted_printable_word(text)),
                    _ => None,
                }
            });
        match word {
            Some(bytes) => {
                if pending.is_empty() && !out.is_empty() {
                    out.push(' ');
                }
                pending.extend(bytes);
            }
            None => {
                out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(token);
            }
        }
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out
}

fn quoted_printable_word(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default())
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'=');
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}
