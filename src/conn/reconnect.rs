//! Reconnect decisions (pure; time is passed in): backoff with jitter and
//! a circuit breaker.

use std::time::{Duration, Instant};

/// Reconnect decisions: exponential backoff with jitter, and a circuit
/// breaker that opens after `threshold` consecutive failures.
#[derive(Clone, Debug)]
pub struct Reconnect {
    base: Duration,
    max: Duration,
    jitter: f64,
    threshold: u32,
    failures: u32,
    next_attempt: Option<Instant>,
    probing: bool,
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    /// Calls go through; attempts follow the backoff.
    Closed,
    /// Calls fail fast until the next attempt.
    Open {
        /// When the next attempt (the half-open probe) may run.
        next_attempt: Instant,
    },
    /// One probe may run now; other calls still fail fast.
    HalfOpen,
}

impl Reconnect {
    /// Backoff from `base` doubling to `max`, with `±jitter` (a fraction,
    /// 0.2 for ±20 %), opening the breaker after `threshold` failures.
    pub fn new(base: Duration, max: Duration, jitter: f64, threshold: u32) -> Reconnect {
        Reconnect {
            base,
            max: max.max(base),
            jitter: jitter.clamp(0.0, 1.0),
            threshold: threshold.max(1),
            failures: 0,
            next_attempt: None,
            probing: false,
        }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before attempt number `failures + 1`, without jitter.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doubled = self.base.saturating_mul(
            1u32.checked_shl(failures.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        doubled.min(self.max)
    }

    /// A connect attempt failed at `now`. `unit` is a uniform random number
    /// in `[0, 1)` for the jitter. Returns when the next attempt may start.
    pub fn failed(&mut self, now: Instant, unit: f64) -> Instant {
        self.failures = self.failures.saturating_add(1);
        self.probing = false;
        let delay = self.backoff(self.failures);
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let next = now + delay.mul_f64(factor);
        self.next_attempt = Some(next);
        next
    }

    /// A connection that counted as a success turned out to be refused
    /// before any answer (a server that refuses our TLS certificate after
    /// its handshake): it counts as the failure after the `prior` ones that
    /// preceded it, as if the connect had failed. Returns when the next
    /// attempt may start.
    pub fn refused_after_connect(&mut self, prior: u32, now: Instant, unit: f64) -> Instant {
        self.failures = prior;
        self.failed(now, unit)
    }

    /// A connection (and its handshake) succeeded: everything resets.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
        self.probing = false;
    }

    /// The breaker's state at `now`.
    pub fn breaker(&self, now: Instant) -> Breaker {
        match self.next_attempt {
            Some(next) if self.failures >= self.threshold => {
                if now < next || self.probing {
                    Breaker::Open { next_attempt: next }
                } else {
                    Breaker::HalfOpen
                }
            }
            _ => Breaker::Closed,
        }
    }

    /// When the next attempt may start, if it must wait.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.next_attempt
    }

    /// Claims the half-open probe; false when one is already running.
    pub fn start_probe(&mut self) -> bool {
        !std::mem::replace(&mut self.probing, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn backoff_doubles_to_the_cap_within_the_jitter() {
        let now = t0();
        let ms = Duration::from_millis;
        let mut r = Reconnect::new(ms(200), Duration::from_secs(15), 0.2, 5);
        let expect = [200u64, 400, 800, 1600, 3200, 6400, 12_800, 15_000, 15_000];
        for (i, base) in expect.iter().enumerate() {
            assert_eq!(r.backoff(i as u32 + 1), ms(*base));
        }
        let low = r.failed(now, 0.0) - now;
        assert_eq!(low, ms(160));
        r.succeeded();
        let high = r.failed(now, 0.999_999) - now;
        assert!(high > ms(239) && high <= ms(240), "{high:?}");
    }

    #[test]
    fn breaker_opens_after_threshold_and_allows_one_probe() {
        let now = t0();
        let ms = Duration::from_millis;
        let mut r = Reconnect::new(ms(100), ms(1000), 0.0, 3);
        r.failed(now, 0.5);
        r.failed(now, 0.5);
        assert_eq!(r.breaker(now), Breaker::Closed);
        let next = r.failed(now, 0.5);
        assert_eq!(r.breaker(now), Breaker::Open { next_attempt: next });
        assert_eq!(r.breaker(next), Breaker::HalfOpen);
        assert!(r.start_probe());
        assert!(!r.start_probe(), "one probe at a time");
        assert_eq!(r.breaker(next), Breaker::Open { next_attempt: next });
        r.succeeded();
        assert_eq!(r.breaker(next), Breaker::Closed);
    }
}
