//! A small SMTP server for tests: it speaks real SMTP over TCP on loopback, records what it
//! receives, and can be told to answer 4xx or 5xx, to stall, or to go away and come back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A message as the server took it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|line| !line.is_empty())
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
    }

    pub fn message_id(&self) -> String {
        self.header("Message-ID").unwrap_or_default()
    }

    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
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

pub struct SmtpServer {
    pub port: u16,
    script: Arc<Mutex<Script>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let server = SmtpServer {
            port,
            script: Arc::default(),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        server.serve(listener);
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: TcpListener) {
        let script = Arc::clone(&self.script);
        let tasks = Arc::clone(&self.tasks);
        let accept_tasks = Arc::clone(&self.tasks);
        tasks.lock().expect("tasks").spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = Arc::clone(&script);
                script.lock().expect("script").connections += 1;
                accept_tasks.lock().expect("tasks").spawn(async move {
                    let _ = session(stream, script).await;
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

async fn session(stream: TcpStream, script: Arc<Mutex<Script>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 eventra-test ESMTP\r\n").await?;
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
        match verb.as_str() {
            "EHLO" => {
                write
                    .write_all(b"250-eventra-test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?
            }
            "HELO" => write.write_all(b"250 eventra-test\r\n").await?,
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
                    });
                    std::mem::take(&mut script.stall_next_data)
                };
                if stall {
                    std::future::pending::<()>().await;
                }
                write.write_all(b"250 2.0.0 queued\r\n").await?;
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
}
