//! A circuit breaker per remote engine: after `threshold` consecutive connection-level failures
//! the engine is skipped for `cooldown`; then one trial request decides whether it closes again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// The cool-down passed; one trial request is allowed.
    HalfOpen,
    /// Requests are refused until the cool-down passes.
    Open,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner { failures: 0, opened_at: None, trial_in_flight: false }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current state (an open breaker past its cool-down reads as half-open).
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() >= self.cooldown => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// Whether a request may go now; in half-open state only one trial at a time.
    pub fn try_acquire(&self) -> bool {
        let mut inner = self.lock();
        match inner.opened_at {
            None => true,
            Some(at) if at.elapsed() >= self.cooldown && !inner.trial_in_flight => {
                inner.trial_in_flight = true;
                true
            }
            Some(_) => false,
        }
    }

    /// The engine answered: close.
    pub fn record_success(&self) {
        let mut inner = self.lock();
        *inner = Inner { failures: 0, opened_at: None, trial_in_flight: false };
    }

    /// A connection-level failure: count it, open at the threshold (or at once after a failed trial).
    pub fn record_failure(&self) {
        let mut inner = self.lock();
        inner.failures = inner.failures.saturating_add(1);
        if inner.trial_in_flight || inner.failures >= self.threshold {
            inner.opened_at = Some(Instant::now());
        }
        inner.trial_in_flight = false;
    }

    /// The request ended without telling anything about the engine (cancelled): free the trial slot.
    pub fn record_neutral(&self) {
        self.lock().trial_in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_after_threshold_half_opens_after_cooldown_and_closes_on_success() {
        let b = Breaker::new(2, Duration::from_millis(40));
        assert!(b.try_acquire());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire(), "one trial");
        assert!(!b.try_acquire(), "only one trial at a time");
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed trial re-opens");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(b.try_acquire());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire() && b.try_acquire());
    }
}
