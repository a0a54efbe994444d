//! A webhook receiver for tests: a real HTTP server on loopback that records every request
//! and answers what the test tells it to, and a verifier of the Standard Webhooks
//! signature written from the specification (HMAC-SHA256 built here from SHA-256, not the
//! platform's code).

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// One request as the receiver took it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Delivered {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct State {
    received: Vec<Delivered>,
    /// The status to answer (204 unless told otherwise).
    answer: Option<u16>,
}

pub struct Receiver {
    state: Arc<Mutex<State>>,
    pub url: String,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = web::Data::from(Arc::clone(&state));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("address").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(take))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            state,
            url: format!("http://127.0.0.1:{port}/hook"),
            handle,
        }
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.state.lock().expect("state").answer = Some(status);
    }

    pub fn received(&self) -> Vec<Delivered> {
        self.state.lock().expect("state").received.clone()
    }

    /// Waits until at least `count` requests came (up to `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: std::time::Duration) -> Vec<Delivered> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

async fn take(
    state: web::Data<Mutex<State>>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delivered = Delivered {
        webhook_id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: body.to_vec(),
    };
    let mut state = state.lock().expect("state");
    state.received.push(delivered);
    let status = state.answer.unwrap_or(204);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status")).finish()
}

/// HMAC-SHA256 (RFC 2104), from SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let mut hasher = Sha256::new();
    hasher.update(&inner);
    hasher.update(message);
    let inner_hash = hasher.finalize();
    let mut hasher = Sha256::new();
    hasher.update(&outer);
    hasher.update(inner_hash);
    hasher.finalize().into()
}

/// Whether `delivered` carries a valid `v1` signature under `secret` (`whsec_…`), as the
/// Standard Webhooks specification defines it: base64 of HMAC-SHA256 over
/// `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the base64-decoded secret.
pub fn signature_is_valid(secret: &str, delivered: &Delivered) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
    else {
        return false;
    };
    let mut message = format!("{}.{}.", delivered.webhook_id, delivered.timestamp).into_bytes();
    message.extend_from_slice(&delivered.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &message))
    );
    delivered
        .signature
        .split(' ')
        .any(|candidate| candidate == expected)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_specifications_example_verifies() {
        let delivered = super::Delivered {
            webhook_id: "msg_p5jXN8AQM9LWM0D4loKWxJek".into(),
            timestamp: "1614265330".into(),
            signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
            content_type: String::new(),
            body: br#"{"test": 2432232314}"#.to_vec(),
        };
        assert!(super::signature_is_valid(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &delivered
        ));
        let mut tampered = delivered.clone();
        tampered.body[2] = b'x';
        assert!(!super::signature_is_valid(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &tampered
        ));
    }
}
