//! Heartbeat decisions (pure; time is passed in).

use std::time::{Duration, Instant};

/// Heartbeat decisions: while calls are outstanding and the peer has been
/// silent for `interval`, ping; if a ping goes unanswered for `timeout`
/// (counted from the last thing received), the connection is dead.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
    ping_outstanding: bool,
    /// Whether calls were outstanding at the last poll: silence counts only
    /// from the moment calls are waiting.
    watching: bool,
}

/// What the driver should do about liveness now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivenessAction {
    /// Nothing; look again at this instant (None: when something changes).
    Wait(Option<Instant>),
    /// Send a NULL call as a ping.
    Ping,
    /// No answer within the ping timeout: close the connection.
    Dead,
}

impl Liveness {
    /// Starts the clock at `now`.
    pub fn new(interval: Duration, timeout: Duration, now: Instant) -> Liveness {
        Liveness {
            interval,
            timeout,
            last_heard: now,
            ping_outstanding: false,
            watching: false,
        }
    }

    /// Anything arrived from the peer.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.ping_outstanding = false;
    }

    /// Decides, given whether calls are outstanding.
    pub fn poll(&mut self, now: Instant, outstanding: bool) -> LivenessAction {
        if !outstanding && !self.ping_outstanding {
            self.watching = false;
            return LivenessAction::Wait(None);
        }
        if !self.watching {
            // A quiet, idle connection is not a silent peer: the clock
            // starts when calls begin to wait.
            self.watching = true;
            self.last_heard = self.last_heard.max(now);
        }
        let dead_at = self.last_heard + self.timeout;
        if now >= dead_at {
            return LivenessAction::Dead;
        }
        let ping_at = self.last_heard + self.interval;
        if !self.ping_outstanding && now >= ping_at {
            self.ping_outstanding = true;
            return LivenessAction::Ping;
        }
        let next = if self.ping_outstanding {
            dead_at
        } else {
            ping_at.min(dead_at)
        };
        LivenessAction::Wait(Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn liveness_pings_after_silence_and_dies_after_the_timeout() {
        let now = t0();
        let s = Duration::from_secs;
        let mut live = Liveness::new(s(5), s(42), now);
        assert_eq!(
            live.poll(now + s(100), false),
            LivenessAction::Wait(None),
            "idle: no pings"
        );
        live.heard(now);
        // A call starts waiting at `now`; silence counts from there.
        assert_eq!(live.poll(now, true), LivenessAction::Wait(Some(now + s(5))));
        assert_eq!(
            live.poll(now + s(1), true),
            LivenessAction::Wait(Some(now + s(5)))
        );
        assert_eq!(live.poll(now + s(5), true), LivenessAction::Ping);
        assert_eq!(
            live.poll(now + s(6), true),
            LivenessAction::Wait(Some(now + s(42)))
        );
        assert_eq!(live.poll(now + s(42), true), LivenessAction::Dead);
        live.heard(now + s(43));
        assert_eq!(
            live.poll(now + s(44), true),
            LivenessAction::Wait(Some(now + s(48)))
        );
    }

    #[test]
    fn silence_counts_only_while_calls_wait() {
        let now = t0();
        let s = Duration::from_secs;
        let mut live = Liveness::new(s(5), s(42), now);
        assert_eq!(live.poll(now + s(1), false), LivenessAction::Wait(None));
        // An hour idle, then a call: not dead, and no ping yet.
        let later = now + s(3600);
        assert_eq!(
            live.poll(later, true),
            LivenessAction::Wait(Some(later + s(5)))
        );
        assert_eq!(live.poll(later + s(5), true), LivenessAction::Ping);
    }
}
