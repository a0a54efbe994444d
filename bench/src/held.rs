//! Many open connections, an open loop: `connections` keep-alive connections are opened and
//! held, then `rate` requests per second are due, spread over them in turn, each measured
//! from its *due* time (a connection still busy with its previous request delays the next
//! one, and that wait is counted). This is what a busy front door looks like: most
//! connections idle most of the time, all of them open.
//!
//! HTTP/1.1 is spoken by hand over `TcpStream` (a request line, two headers, and an answer
//! read by its `Content-Length`): the load generator shares the machine with the system, and
//! a client library's pool would open connections as it pleases instead of holding exactly
//! `connections`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::load::Summary;

/// What the run asked for and what it could have.
pub struct Held {
    pub summary: Summary,
    pub connections: usize,
    pub rate: f64,
}

/// One connection's request: `GET path` with a bearer token.
struct Connection {
    stream: Option<TcpStream>,
    address: String,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: &str, path: &str, token: &str) -> anyhow::Result<Connection> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .into_bytes();
        let mut connection = Connection {
            stream: None,
            address: address.to_owned(),
            request,
            buffer: Vec::with_capacity(4096),
        };
        connection.connect().await?;
        Ok(connection)
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(&self.address)
            .await
            .with_context(|| format!("connecting to {}", self.address))?;
        stream.set_nodelay(true)?;
        self.stream = Some(stream);
        Ok(())
    }

    /// Sends the request and reads the whole answer; the status, or 0 when the connection
    /// failed (it is opened again for the next request).
    async fn send(&mut self) -> u16 {
        if self.stream.is_none() && self.connect().await.is_err() {
            return 0;
        }
        match self.exchange().await {
            Ok(status) => status,
            Err(_) => {
                self.stream = None;
                0
            }
        }
    }

    async fn exchange(&mut self) -> anyhow::Result<u16> {
        let Some(stream) = self.stream.as_mut() else {
            bail!("not connected");
        };
        stream.write_all(&self.request).await?;
        self.buffer.clear();
        let (head_end, status, length) = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let (status, length) = parse_head(&self.buffer[..end])?;
                break (end + 4, status, length);
            }
            if stream.read_buf(&mut self.buffer).await? == 0 {
                bail!("the connection closed mid-answer");
            }
        };
        while self.buffer.len() < head_end + length {
            if stream.read_buf(&mut self.buffer).await? == 0 {
                bail!("the connection closed mid-body");
            }
        }
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status and the `Content-Length` of an answer's head (no chunked answers expected:
/// every answer of the API has a length).
fn parse_head(head: &[u8]) -> anyhow::Result<(u16, usize)> {
    let head = std::str::from_utf8(head).context("the answer's head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse())
        .transpose()?
        .context("an answer without Content-Length")?;
    Ok((status, length))
}

/// How many connections this process may hold: the target, or what the file limit leaves
/// (the server holds as many, under the same limit).
pub fn connections_allowed(wanted: usize, open_files_limit: Option<u64>) -> usize {
    let limit = open_files_limit.unwrap_or(1024) as usize;
    wanted.min(limit.saturating_sub(256)).max(1)
}

/// Opens `connections` connections to `address` (each with one of `tokens`, in turn), asks
/// each once so that they are all established, then sends `rate` requests per second for
/// `duration`.
pub async fn run(
    address: &str,
    path: &str,
    tokens: &[String],
    connections: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Held> {
    let mut opened = Vec::with_capacity(connections);
    let mut opening = tokio::task::JoinSet::new();
    for n in 0..connections {
        let (address, path, token) = (
            address.to_owned(),
            path.to_owned(),
            tokens[n % tokens.len()].clone(),
        );
        opening.spawn(async move {
            let mut connection = Connection::open(&address, &path, &token).await?;
            match connection.send().await {
                200 => Ok(connection),
                status => bail!("the first request on a connection answered {status}"),
            }
        });
        // A bounded number in flight: the listen backlog is finite.
        if opening.len() >= 256
            && let Some(done) = opening.join_next().await
        {
            opened.push(done??);
        }
    }
    while let Some(done) = opening.join_next().await {
        opened.push(done??);
    }

    let cpu = crate::cpu::sample();
    let started = Instant::now();
    let mut queues = Vec::with_capacity(opened.len());
    let mut workers = tokio::task::JoinSet::new();
    for mut connection in opened {
        let (due_tx, mut due_rx) = mpsc::unbounded_channel::<Instant>();
        queues.push(due_tx);
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
            while let Some(due) = due_rx.recv().await {
                match connection.send().await {
                    200 => latencies.push(due.elapsed().as_secs_f64() * 1000.0),
                    status => *errors.entry(status).or_default() += 1,
                }
            }
            (latencies, errors)
        });
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let total = (duration.as_secs_f64() * rate).max(1.0) as u64;
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let queue = &queues[n as usize % queues.len()];
        if queue.send(due).is_err() {
            bail!("a connection's worker ended early");
        }
    }
    drop(queues);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = BTreeMap::new();
    while let Some(done) = workers.join_next().await {
        let (mut more, more_errors) = done?;
        latencies.append(&mut more);
        for (status, count) in more_errors {
            *errors.entry(status).or_default() += count;
        }
    }
    let mut summary = Summary::of(latencies, errors, started.elapsed().as_secs_f64());
    summary.cpu_percent = crate::cpu::split_since(&cpu);
    Ok(Held {
        summary,
        connections,
        rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_head_gives_its_status_and_length() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 42";
        assert_eq!(parse_head(head).ok(), Some((200, 42)));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
        assert!(parse_head(b"garbage").is_err());
    }

    #[test]
    fn the_connections_held_leave_room_under_the_file_limit() {
        assert_eq!(connections_allowed(5_000, Some(20_000)), 5_000);
        assert_eq!(connections_allowed(5_000, Some(1_024)), 768);
        assert_eq!(connections_allowed(5_000, None), 768);
    }
}
