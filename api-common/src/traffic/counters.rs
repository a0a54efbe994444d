//! Where the rate limit's counters live: this process's memory (bounded, swept in the
//! background) or Redis (one Lua script per request, shared by every instance).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub(super) const WINDOW: Duration = Duration::from_secs(3600);

/// Counters one process keeps at most; past that, new keys share one overflow counter (at
/// the anonymous limit) until the sweep frees room, so memory stays bounded whatever keys
/// clients make up.
const MAX_COUNTERS: usize = 100_000;
/// How often windows that are over are swept out (in the background, never by a request).
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

pub(super) type MemoryCounters = Mutex<HashMap<String, (Instant, u64)>>;

/// Where the counters live.
pub(super) enum Counters {
    Memory(std::sync::Arc<MemoryCounters>),
    Redis {
        connection: redis::aio::ConnectionManager,
        script: redis::Script,
    },
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub limit: u32,
    pub count: u64,
    /// Seconds until the window ends.
    pub reset: u64,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.count <= u64::from(self.limit)
    }

    pub(super) fn remaining(&self) -> u64 {
        u64::from(self.limit).saturating_sub(self.count)
    }
}

// Spends ARGV[2] (1, or 0 to look) of the key's budget, opening the window with the first
// request; a look at a key that has none answers 0 and creates nothing.
const COUNT_SCRIPT: &str = r"
if ARGV[2] == '0' then
  local count = tonumber(redis.call('GET', KEYS[1]) or '0')
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 0 then ttl = tonumber(ARGV[1]) end
  return {count, ttl}
end
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
";

impl Counters {
    /// Connects to Redis when `redis_url` is given (and fails if it cannot); in memory else.
    pub async fn connect(redis_url: Option<&infra::ConnectionUrl>) -> anyhow::Result<Self> {
        Ok(match redis_url {
            Some(url) => {
                let client = redis::Client::open(url.expose())
                    .context("REDIS_URL is not a valid Redis URL")?;
                let connection = tokio::time::timeout(
                    Duration::from_secs(5),
                    redis::aio::ConnectionManager::new(client),
                )
                .await
                .context("connecting to Redis timed out")?
                .context("connecting to Redis")?;
                Counters::Redis {
                    connection,
                    script: redis::Script::new(COUNT_SCRIPT),
                }
            }
            None => {
                let counters = std::sync::Arc::new(MemoryCounters::default());
                tokio::spawn(sweep(std::sync::Arc::downgrade(&counters)));
                Counters::Memory(counters)
            }
        })
    }

    /// Spends `amount` (1, or 0 to look) of `key`'s hourly budget of `limit`. Past
    /// [`MAX_COUNTERS`] a new key spends the shared overflow counter at `overflow_limit`.
    pub async fn spend(
        &self,
        key: &str,
        limit: u32,
        amount: u64,
        overflow_limit: u32,
        key_prefix: &str,
        service: &'static str,
    ) -> Decision {
        match self {
            Counters::Memory(counters) => {
                let now = Instant::now();
                let mut counters = counters
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if amount == 0 {
                    let (count, opened) = counters
                        .get(key)
                        .filter(|(opened, _)| now.duration_since(*opened) < WINDOW)
                        .map_or((0, now), |(opened, count)| (*count, *opened));
                    return Decision {
                        limit,
                        count,
                        reset: WINDOW
                            .saturating_sub(now.duration_since(opened))
                            .as_secs()
                            .max(1),
                    };
                }
                let (key, limit) = if counters.len() >= MAX_COUNTERS && !counters.contains_key(key)
                {
                    metrics::counter!("eventra_rate_limit_overflow_total", "service" => service)
                        .increment(1);
                    ("overflow", limit.min(overflow_limit))
                } else {
                    (key, limit)
                };
                let entry = counters.entry(key.to_owned()).or_insert((now, 0));
                if now.duration_since(entry.0) >= WINDOW {
                    *entry = (now, 0);
                }
                entry.1 += amount;
                Decision {
                    limit,
                    count: entry.1,
                    reset: WINDOW
                        .saturating_sub(now.duration_since(entry.0))
                        .as_secs()
                        .max(1),
                }
            }
            Counters::Redis { connection, script } => {
                let mut connection = connection.clone();
                let key = format!("{key_prefix}:{key}");
                let counted = tokio::time::timeout(
                    Duration::from_millis(500),
                    script
                        .key(&key)
                        .arg(WINDOW.as_secs())
                        .arg(amount)
                        .invoke_async::<(u64, u64)>(&mut connection),
                )
                .await;
                match counted {
                    Ok(Ok((count, ttl))) => Decision {
                        limit,
                        count,
                        reset: ttl.max(1),
                    },
                    failed => {
                        // Fail open: an unreachable Redis must not take the API down.
                        let error = match failed {
                            Ok(Err(error)) => error.to_string(),
                            _ => "timed out".to_owned(),
                        };
                        tracing::warn!(%error, "Redis did not count a request; letting it through");
                        metrics::counter!("eventra_rate_limit_store_errors_total", "service" => service)
                            .increment(1);
                        Decision {
                            limit,
                            count: 0,
                            reset: WINDOW.as_secs(),
                        }
                    }
                }
            }
        }
    }
}

/// Sweeps out the windows that are over, until the counters are gone.
async fn sweep(counters: std::sync::Weak<MemoryCounters>) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let Some(counters) = counters.upgrade() else {
            return;
        };
        let now = Instant::now();
        counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, (opened, _)| now.duration_since(*opened) < WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_counts_down_to_the_limit() {
        let decision = Decision {
            limit: 2,
            count: 2,
            reset: 10,
        };
        assert!(decision.allowed());
        assert_eq!(decision.remaining(), 0);
        let over = Decision {
            count: 3,
            ..decision
        };
        assert!(!over.allowed());
        assert_eq!(over.remaining(), 0);
    }
}
