//! Fixed-window rate limiting, in memory or shared through Redis.
//!
//! Redis errors never fail a request: the limiter falls back to its in-memory window for that
//! call (per-replica limits instead of shared ones) and counts the error in metrics. Nor do they
//! slow requests down: a Redis call gets [`REDIS_TIMEOUT`], and after an error the limiter
//! stays on its in-memory window for [`REDIS_RETRY_AFTER`] before it asks Redis again (without
//! that, every request waited for the connection manager's reconnect attempts: seconds each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seidra_config::RateLimitPolicy;

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

/// Longest a request waits for the shared counter before using the in-memory window.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the limiter keeps to its in-memory window after a Redis error.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A rate limiter; clones share their counters.
#[derive(Clone)]
pub struct RateLimiter {
    memory: Arc<Mutex<MemoryWindows>>,
    redis: Option<(redis::aio::ConnectionManager, Arc<str>)>,
    script: Arc<redis::Script>,
    /// Until when Redis is skipped after an error (`None`: use it).
    redis_down_until: Arc<Mutex<Option<Instant>>>,
}

#[derive(Default)]
struct MemoryWindows {
    windows: HashMap<String, (Instant, u32)>,
    last_sweep: Option<Instant>,
}

/// INCR the window counter, start its expiry on first use, return `{count, ttl_ms}`.
const REDIS_SCRIPT: &str = r"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}
";

impl RateLimiter {
    /// An in-memory limiter (single replica).
    pub fn in_memory() -> Self {
        Self {
            memory: Arc::default(),
            redis: None,
            script: Arc::new(redis::Script::new(REDIS_SCRIPT)),
            redis_down_until: Arc::default(),
        }
    }

    /// A limiter shared across replicas through Redis, keys under `prefix`.
    pub fn redis(conn: redis::aio::ConnectionManager, prefix: &str) -> Self {
        Self { redis: Some((conn, Arc::from(prefix))), ..Self::in_memory() }
    }

    /// Whether counters are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Counts one request for `key` under the named policy.
    pub async fn check(&self, policy_name: &str, key: &str, policy: RateLimitPolicy) -> Decision {
        let window_ms = policy.window_secs.saturating_mul(1000);
        if let Some((conn, prefix)) = &self.redis
            && self.redis_usable()
        {
            let mut conn = conn.clone();
            let redis_key = format!("{prefix}rl:{policy_name}:{key}");
            let mut invocation = self.script.key(redis_key);
            invocation.arg(window_ms);
            let call = invocation.invoke_async::<(u64, i64)>(&mut conn);
            let error = match tokio::time::timeout(REDIS_TIMEOUT, call).await {
                Ok(Ok((count, ttl_ms))) => return decide(policy, count, u64::try_from(ttl_ms).unwrap_or(window_ms)),
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()),
            };
            metrics::counter!("seidra_rate_limit_backend_errors_total").increment(1);
            tracing::warn!(
                %error,
                retry_in_ms = REDIS_RETRY_AFTER.as_millis(),
                "redis rate limiter unavailable; using the in-memory window"
            );
            if let Ok(mut until) = self.redis_down_until.lock() {
                *until = Some(Instant::now() + REDIS_RETRY_AFTER);
            }
        }
        self.check_memory(policy_name, key, policy)
    }

    /// False for a moment after a Redis error, so requests do not queue behind reconnects.
    fn redis_usable(&self) -> bool {
        let Ok(mut until) = self.redis_down_until.lock() else { return true };
        match *until {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                *until = None;
                true
            }
            None => true,
        }
    }

    fn check_memory(&self, policy_name: &str, key: &str, policy: RateLimitPolicy) -> Decision {
        let window = Duration::from_secs(policy.window_secs);
        let now = Instant::now();
        let Ok(mut guard) = self.memory.lock() else {
            // A poisoned lock means a panic mid-update; failing open beats failing every request.
            return Decision { allowed: true, limit: policy.requests, remaining: policy.requests, reset_secs: 0 };
        };
        if guard.last_sweep.is_none_or(|t| now.duration_since(t) > Duration::from_secs(60)) {
            guard.windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(3600));
            guard.last_sweep = Some(now);
        }
        let entry = guard.windows.entry(format!("{policy_name}:{key}")).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let elapsed = now.duration_since(entry.0);
        let reset_ms = u64::try_from(window.saturating_sub(elapsed).as_millis()).unwrap_or(u64::MAX);
        decide(policy, u64::from(entry.1), reset_ms)
    }
}

fn decide(policy: RateLimitPolicy, count: u64, reset_ms: u64) -> Decision {
    let limit = policy.requests;
    Decision {
        allowed: count <= u64::from(limit),
        limit,
        remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
        reset_secs: reset_ms.div_ceil(1000).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_window() {
        let limiter = RateLimiter::in_memory();
        let policy = RateLimitPolicy { requests: 2, window_secs: 60 };
        assert!(limiter.check("t", "a", policy).await.allowed);
        let second = limiter.check("t", "a", policy).await;
        assert!(second.allowed);
        assert_eq!(second.remaining, 0);
        let third = limiter.check("t", "a", policy).await;
        assert!(!third.allowed);
        assert!(third.reset_secs >= 59);
        assert!(limiter.check("t", "b", policy).await.allowed);
    }
}
