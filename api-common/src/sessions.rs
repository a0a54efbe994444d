//! What an API remembers of the sessions it authenticated (ADR 0031): a verified token's
//! session, its user's role and status, for at most `AUTH_CACHE_TTL_MS` (1 s), so that a
//! request of a known session needs no round trip to Postgres.
//!
//! Every change that can end or narrow a caller's access — a session revoked or gone, a user
//! deactivated, removed, deleted, given another role — is announced by a trigger on the
//! authentication state (`NOTIFY eventra_auth_changed`, delivered at commit), and every
//! instance forgets what it keeps of that session or user. The cache is trusted only while
//! its listening connection is up: when it drops, everything kept is forgotten and every
//! request asks Postgres until it listens again. A request that asked Postgres before an
//! announcement and answers after it keeps nothing (a generation counter), and nothing is
//! kept longer than the TTL: a revocation bites on every instance within a second at worst,
//! within milliseconds normally.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use infra::auth::Principal;
use infra::tokens::AccessClaims;
use uuid::Uuid;

/// The channel the authentication state's triggers announce changes on (payload `s:<session>`
/// or `u:<user>`).
pub const AUTH_CHANNEL: &str = "eventra_auth_changed";

/// The most sessions kept; past it, the stale ones go, then all.
const CAPACITY: usize = 50_000;

struct Entry {
    principal: Principal,
    session_expires_at: DateTime<Utc>,
    kept_at: Instant,
}

#[derive(Default)]
struct Kept {
    entries: HashMap<Uuid, Entry>,
    /// Raised by every announcement: an answer read from Postgres before it is not kept.
    generation: u64,
}

pub struct SessionCache {
    ttl: Duration,
    kept: std::sync::Mutex<Kept>,
    listening: AtomicBool,
}

impl SessionCache {
    /// A cache that keeps nothing (every request asks Postgres).
    pub fn disabled() -> Arc<Self> {
        Arc::new(SessionCache {
            ttl: Duration::ZERO,
            kept: std::sync::Mutex::default(),
            listening: AtomicBool::new(false),
        })
    }

    /// A cache keeping sessions for `ttl`, listening for changes on `database_url` for as long
    /// as the process runs. A zero `ttl` keeps nothing.
    pub fn start(database_url: String, ttl: Duration) -> Arc<Self> {
        let cache = Arc::new(SessionCache {
            ttl,
            kept: std::sync::Mutex::default(),
            listening: AtomicBool::new(false),
        });
        if !ttl.is_zero() {
            tokio::spawn(Arc::clone(&cache).listen(database_url));
        }
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn listen(self: Arc<Self>, database_url: String) {
        let mut failures = 0u32;
        loop {
            match infra::db::listen(&database_url, AUTH_CHANNEL).await {
                Ok(mut listening) => {
                    failures = 0;
                    // Whatever changed before this point may have been missed.
                    self.forget_everything();
                    self.listening.store(true, Ordering::SeqCst);
                    while let Some(payload) = listening.payloads.recv().await {
                        self.announced(&payload);
                    }
                    self.listening.store(false, Ordering::SeqCst);
                    self.forget_everything();
                    tracing::warn!(
                        "the authentication listener's connection ended; asking Postgres until it is back"
                    );
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, "listening for authentication changes failed");
                }
            }
            let delay = Duration::from_millis((100u64 << failures.min(5)).min(3_000));
            tokio::time::sleep(delay).await;
        }
    }

    fn announced(&self, payload: &str) {
        let mut kept = self.lock();
        kept.generation += 1;
        match payload.split_once(':') {
            Some(("s", id)) => match id.parse::<Uuid>() {
                Ok(session_id) => {
                    kept.entries.remove(&session_id);
                }
                Err(_) => kept.entries.clear(),
            },
            Some(("u", id)) => match id.parse::<Uuid>() {
                Ok(user_id) => kept
                    .entries
                    .retain(|_, entry| entry.principal.user_id != user_id),
                Err(_) => kept.entries.clear(),
            },
            _ => kept.entries.clear(),
        }
    }

    fn forget_everything(&self) {
        let mut kept = self.lock();
        kept.generation += 1;
        kept.entries.clear();
    }

    /// The principal of a verified token's session, if it is kept and still valid.
    pub fn get(&self, claims: &AccessClaims) -> Option<Principal> {
        if self.ttl.is_zero() || !self.listening.load(Ordering::SeqCst) {
            return None;
        }
        let kept = self.lock();
        let entry = kept.entries.get(&claims.sid)?;
        let valid = entry.kept_at.elapsed() < self.ttl
            && entry.session_expires_at > Utc::now()
            && entry.principal.user_id == claims.sub
            && entry.principal.tenant_id == claims.tid;
        valid.then_some(entry.principal)
    }

    /// The generation to give [`SessionCache::keep`] for an answer about to be read.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps what Postgres answered, unless a change was announced since `generation` was
    /// taken (the answer may predate it) or the cache is not listening.
    pub fn keep(&self, generation: u64, principal: Principal, session_expires_at: DateTime<Utc>) {
        if self.ttl.is_zero() || !self.listening.load(Ordering::SeqCst) {
            return;
        }
        let mut kept = self.lock();
        if kept.generation != generation {
            return;
        }
        if kept.entries.len() >= CAPACITY {
            let ttl = self.ttl;
            kept.entries
                .retain(|_, entry| entry.kept_at.elapsed() < ttl);
            if kept.entries.len() >= CAPACITY {
                kept.entries.clear();
            }
        }
        kept.entries.insert(
            principal.session_id,
            Entry {
                principal,
                session_expires_at,
                kept_at: Instant::now(),
            },
        );
    }

    /// Whether the cache is in use now (listening, and keeping for a non-zero time).
    pub fn is_listening(&self) -> bool {
        !self.ttl.is_zero() && self.listening.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(user_id: Uuid, session_id: Uuid) -> Principal {
        Principal {
            user_id,
            tenant_id: Uuid::nil(),
            session_id,
            role: domain::Role::Member,
            platform_admin: false,
        }
    }

    fn claims(of: &Principal) -> AccessClaims {
        AccessClaims {
            iss: String::new(),
            aud: String::new(),
            sub: of.user_id,
            tid: of.tenant_id,
            sid: of.session_id,
            role: of.role,
            iat: 0,
            exp: 0,
        }
    }

    fn listening(ttl: Duration) -> SessionCache {
        SessionCache {
            ttl,
            kept: std::sync::Mutex::default(),
            listening: AtomicBool::new(true),
        }
    }

    #[test]
    fn a_kept_session_is_forgotten_when_it_or_its_user_is_announced() {
        let cache = listening(Duration::from_secs(60));
        let later = Utc::now() + chrono::Duration::hours(1);
        let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, b, c) = (
            principal(user, Uuid::new_v4()),
            principal(user, Uuid::new_v4()),
            principal(other, Uuid::new_v4()),
        );
        for p in [a, b, c] {
            cache.keep(cache.generation(), p, later);
        }
        assert_eq!(cache.get(&claims(&a)), Some(a));
        cache.announced(&format!("s:{}", a.session_id));
        assert_eq!(cache.get(&claims(&a)), None);
        assert_eq!(cache.get(&claims(&b)), Some(b));
        cache.announced(&format!("u:{user}"));
        assert_eq!(cache.get(&claims(&b)), None);
        assert_eq!(cache.get(&claims(&c)), Some(c));
        cache.announced("garbage");
        assert_eq!(
            cache.get(&claims(&c)),
            None,
            "anything unreadable forgets all"
        );
    }

    #[test]
    fn an_answer_read_before_an_announcement_is_not_kept() {
        let cache = listening(Duration::from_secs(60));
        let p = principal(Uuid::new_v4(), Uuid::new_v4());
        let generation = cache.generation();
        cache.announced(&format!("u:{}", p.user_id));
        cache.keep(generation, p, Utc::now() + chrono::Duration::hours(1));
        assert_eq!(cache.get(&claims(&p)), None);
    }

    #[test]
    fn nothing_is_trusted_past_its_time_its_session_or_while_not_listening() {
        let cache = listening(Duration::from_millis(30));
        let p = principal(Uuid::new_v4(), Uuid::new_v4());
        cache.keep(
            cache.generation(),
            p,
            Utc::now() + chrono::Duration::hours(1),
        );
        assert_eq!(cache.get(&claims(&p)), Some(p));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&claims(&p)), None, "past the TTL");

        let cache = listening(Duration::from_secs(60));
        cache.keep(
            cache.generation(),
            p,
            Utc::now() - chrono::Duration::seconds(1),
        );
        assert_eq!(cache.get(&claims(&p)), None, "the session has expired");

        let cache = listening(Duration::from_secs(60));
        cache.keep(
            cache.generation(),
            p,
            Utc::now() + chrono::Duration::hours(1),
        );
        let mut stranger = claims(&p);
        stranger.sub = Uuid::new_v4();
        assert_eq!(
            cache.get(&stranger),
            None,
            "another user naming the session"
        );
        cache.listening.store(false, Ordering::SeqCst);
        assert_eq!(cache.get(&claims(&p)), None, "not listening");

        assert_eq!(SessionCache::disabled().get(&claims(&p)), None);
    }
}
