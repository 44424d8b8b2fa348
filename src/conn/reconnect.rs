//! Reconnect decisions (pure; time is passed in): backoff with jitter and
//! a circuit breaker.
//!
//! Besides the backoff after a failed attempt, two moments would make many
//! clients dial in the same instant: a node that starts with a list of
//! peers makes all its clients at once, and a peer that restarts loses the
//! connections of every node at once. So the first attempt may wait a
//! random part of a *first-connect spread* ([`Reconnect::delay_first`]),
//! and the attempt after a lost connection waits a random part of the
//! backoff base ([`Reconnect::lost`]). Neither counts as a failure: the
//! breaker stays closed.

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

    /// Delays the very first attempt by `spread × unit` from `now` (`unit`
    /// uniform in `[0, 1)`). A zero `spread` changes nothing: the first
    /// attempt starts at once. Returns when it may start.
    pub fn delay_first(&mut self, now: Instant, spread: Duration, unit: f64) -> Instant {
        let next = now + spread.mul_f64(unit.clamp(0.0, 1.0));
        if next > now {
            self.next_attempt = Some(next);
        }
        next
    }

    /// An established connection was lost at `now`: the next attempt waits
    /// `base × unit` (`unit` uniform in `[0, 1)`), so that the clients of a
    /// peer that went away do not all dial it again in one burst. Not a
    /// failure: the failure count stays at zero and the breaker closed.
    /// Returns when the next attempt may start.
    pub fn lost(&mut self, now: Instant, unit: f64) -> Instant {
        self.failures = 0;
        self.probing = false;
        let next = now + self.base.mul_f64(unit.clamp(0.0, 1.0));
        self.next_attempt = (next > now).then_some(next);
        next
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

    #[test]
    fn first_attempt_waits_within_the_spread_or_not_at_all() {
        let now = t0();
        let ms = Duration::from_millis;
        let mut r = Reconnect::new(ms(100), ms(1000), 0.2, 3);
        assert_eq!(r.delay_first(now, Duration::ZERO, 0.7), now);
        assert_eq!(r.next_attempt(), None, "no spread: no wait");
        let at = r.delay_first(now, ms(500), 0.5);
        assert_eq!(at, now + ms(250));
        assert_eq!(r.next_attempt(), Some(at));
        assert_eq!(r.failures(), 0);
        assert_eq!(r.breaker(now), Breaker::Closed, "a spread is no failure");
        let latest = Reconnect::new(ms(100), ms(1000), 0.2, 3).delay_first(now, ms(500), 0.999_999);
        assert!(latest < now + ms(500), "{:?}", latest - now);
    }

    #[test]
    fn a_lost_connection_waits_a_random_part_of_the_base_and_is_no_failure() {
        let now = t0();
        let ms = Duration::from_millis;
        let mut r = Reconnect::new(ms(200), ms(15_000), 0.2, 1);
        r.succeeded();
        let at = r.lost(now, 0.25);
        assert_eq!(at, now + ms(50));
        assert_eq!(r.next_attempt(), Some(at));
        assert_eq!(r.failures(), 0);
        // Even with a threshold of one, a loss does not open the breaker.
        assert_eq!(r.breaker(now), Breaker::Closed);
        // A unit of 0 reconnects at once.
        assert_eq!(r.lost(now, 0.0), now);
        assert_eq!(r.next_attempt(), None);
        // A failure after the loss backs off from the base as usual.
        let failed = r.failed(now, 0.5);
        assert_eq!(failed, now + ms(200));
    }

    #[test]
    fn units_spread_over_the_whole_window() {
        // Sixteen evenly spaced units give sixteen distinct start times
        // inside the window: the spread is what separates simultaneous
        // clients.
        let now = t0();
        let ms = Duration::from_millis;
        let mut starts: Vec<Duration> = (0..16)
            .map(|i| {
                let mut r = Reconnect::new(ms(200), ms(1000), 0.2, 5);
                r.lost(now, f64::from(i) / 16.0) - now
            })
            .collect();
        starts.dedup();
        assert_eq!(starts.len(), 16);
        assert!(starts.iter().all(|d| *d < ms(200)));
    }
}
