//! The client's pure call state: XIDs, deadlines, liveness and reconnect
//! decisions. Time is passed in; nothing here sleeps or does I/O.
//!
//! [`CallTable`] is what keeps replies with their callers. Its rules:
//!
//! - XIDs come from a per-connection counter with a random start, and an
//!   XID still in the table is never handed out again.
//! - A call whose deadline passes is failed, but its XID stays *reserved*
//!   until its late reply arrives (dropped and counted) or the connection
//!   closes. The same holds for a call whose caller went away after its
//!   request was queued. So a late reply can never reach a newer call.
//! - A reply whose XID is not in the table is dropped and counted.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Counters a connection keeps about its calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls started.
    pub started: u64,
    /// Replies delivered to their callers.
    pub replied: u64,
    /// Calls failed by their deadline.
    pub timed_out: u64,
    /// Calls whose caller went away before the reply.
    pub abandoned: u64,
    /// Replies that came after their call was failed or abandoned.
    pub late_replies: u64,
    /// Replies whose XID matched no call.
    pub unknown_replies: u64,
}

#[derive(Debug)]
enum Entry<W> {
    /// A caller waits.
    Live {
        waiter: W,
        deadline: Instant,
        sent: bool,
    },
    /// Nobody waits, but a reply may still come: the XID stays reserved.
    Reserved,
}

/// What became of a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyFor<W> {
    /// Deliver it to this waiter.
    Caller(W),
    /// Its call already timed out or was abandoned: dropped, counted.
    Late,
    /// No call has this XID: dropped, counted.
    Unknown,
}

/// A waiter failed by [`CallTable::close`], and whether its request had
/// been written (it may have run) or not (safe to retry).
#[derive(Debug, PartialEq, Eq)]
pub struct Failed<W> {
    /// The XID.
    pub xid: u32,
    /// The waiter.
    pub waiter: W,
    /// True when the request reached the socket.
    pub sent: bool,
}

/// Calls in flight on one connection, by XID. `W` is whatever wakes the
/// caller (a oneshot sender in the client driver).
#[derive(Debug)]
pub struct CallTable<W> {
    next_xid: u32,
    entries: HashMap<u32, Entry<W>>,
    deadlines: BTreeSet<(Instant, u32)>,
    live: usize,
    reserved: usize,
    limit: usize,
    max_reserved: usize,
    stats: CallStats,
}

impl<W> CallTable<W> {
    /// A table whose first XID is `first_xid` (pick it at random), with at
    /// most `limit` live calls and `max_reserved` reserved XIDs.
    pub fn new(first_xid: u32, limit: usize, max_reserved: usize) -> CallTable<W> {
        CallTable {
            next_xid: first_xid,
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
            live: 0,
            reserved: 0,
            limit: limit.max(1),
            max_reserved,
            stats: CallStats::default(),
        }
    }

    /// Live calls.
    pub fn live(&self) -> usize {
        self.live
    }

    /// XIDs reserved for replies nobody waits for.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// True when another call may start.
    pub fn has_room(&self) -> bool {
        self.live < self.limit
    }

    /// True when so many XIDs are reserved that the peer has stopped
    /// answering in practice: the connection should be closed.
    pub fn is_clogged(&self) -> bool {
        self.reserved > self.max_reserved
    }

    /// The counters.
    pub fn stats(&self) -> CallStats {
        self.stats
    }

    /// Starts a call; returns its XID, or gives the waiter back when the
    /// table is full.
    pub fn start(&mut self, deadline: Instant, waiter: W) -> Result<u32, W> {
        if !self.has_room() {
            return Err(waiter);
        }
        // Skip XIDs still in use; the table holds far fewer than 2^32.
        let mut xid = self.next_xid;
        while self.entries.contains_key(&xid) {
            xid = xid.wrapping_add(1);
        }
        self.next_xid = xid.wrapping_add(1);
        self.entries.insert(
            xid,
            Entry::Live {
                waiter,
                deadline,
                sent: false,
            },
        );
        self.deadlines.insert((deadline, xid));
        self.live += 1;
        self.stats.started += 1;
        Ok(xid)
    }

    /// Records that the call's request reached the socket.
    pub fn mark_sent(&mut self, xid: u32) {
        if let Some(Entry::Live { sent, .. }) = self.entries.get_mut(&xid) {
            *sent = true;
        }
    }

    /// True when the call is live and its request not yet written: the
    /// writer may skip it if its caller is gone.
    pub fn is_live(&self, xid: u32) -> bool {
        matches!(self.entries.get(&xid), Some(Entry::Live { .. }))
    }

    /// Matches a reply to its call.
    pub fn reply(&mut self, xid: u32) -> ReplyFor<W> {
        match self.entries.remove(&xid) {
            Some(Entry::Live {
                waiter, deadline, ..
            }) => {
                self.deadlines.remove(&(deadline, xid));
                self.live -= 1;
                self.stats.replied += 1;
                ReplyFor::Caller(waiter)
            }
            Some(Entry::Reserved) => {
                self.reserved -= 1;
                self.stats.late_replies += 1;
                ReplyFor::Late
            }
            None => {
                self.stats.unknown_replies += 1;
                ReplyFor::Unknown
            }
        }
    }

    /// The caller went away. If the request may be on the wire (`queued`),
    /// the XID stays reserved; otherwise it is freed.
    pub fn abandon(&mut self, xid: u32, queued: bool) -> Option<W> {
        let Some(Entry::Live { deadline, .. }) = self.entries.get(&xid) else {
            return None;
        };
        self.deadlines.remove(&(*deadline, xid));
        self.live -= 1;
        self.stats.abandoned += 1;
        let entry = if queued {
            self.reserved += 1;
            self.entries.insert(xid, Entry::Reserved)
        } else {
            self.entries.remove(&xid)
        };
        match entry {
            Some(Entry::Live { waiter, .. }) => Some(waiter),
            _ => None,
        }
    }

    /// The earliest deadline, for the driver's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Fails every call whose deadline is at or before `now`; their XIDs
    /// stay reserved. Returns the waiters to fail with a timeout, and
    /// whether each request had been sent.
    pub fn expire(&mut self, now: Instant) -> Vec<Failed<W>> {
        let mut out = Vec::new();
        while let Some(&(deadline, xid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(Entry::Live { waiter, sent, .. }) =
                self.entries.insert(xid, Entry::Reserved)
            {
                self.live -= 1;
                self.reserved += 1;
                self.stats.timed_out += 1;
                out.push(Failed { xid, waiter, sent });
            }
        }
        out
    }

    /// The connection closed: fails every live call, saying whether its
    /// request was sent, and frees every XID.
    pub fn close(&mut self) -> Vec<Failed<W>> {
        self.deadlines.clear();
        self.live = 0;
        self.reserved = 0;
        let mut out: Vec<Failed<W>> = self
            .entries
            .drain()
            .filter_map(|(xid, entry)| match entry {
                Entry::Live { waiter, sent, .. } => Some(Failed { xid, waiter, sent }),
                Entry::Reserved => None,
            })
            .collect();
        out.sort_by_key(|f| f.xid);
        out
    }
}

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
    fn xids_count_up_from_the_start_and_skip_those_in_use() {
        let now = t0();
        let mut table = CallTable::new(u32::MAX - 1, 8, 8);
        let a = table.start(now, 'a').unwrap();
        let b = table.start(now, 'b').unwrap();
        let c = table.start(now, 'c').unwrap();
        assert_eq!((a, b, c), (u32::MAX - 1, u32::MAX, 0));
        let mut table = CallTable::new(5, 8, 8);
        let five = table.start(now + Duration::from_secs(9), 'x').unwrap();
        table.next_xid = 5;
        assert_eq!(table.start(now, 'y').unwrap(), 6, "5 is in use");
        assert_eq!(five, 5);
    }

    #[test]
    fn replies_go_to_their_caller_once() {
        let now = t0();
        let mut table = CallTable::new(100, 8, 8);
        let a = table.start(now, 'a').unwrap();
        let b = table.start(now, 'b').unwrap();
        assert_eq!(table.reply(b), ReplyFor::Caller('b'));
        assert_eq!(table.reply(b), ReplyFor::Unknown, "a duplicate is unknown");
        assert_eq!(table.reply(a), ReplyFor::Caller('a'));
        assert_eq!(table.reply(7), ReplyFor::Unknown);
        assert_eq!(table.stats().unknown_replies, 2);
    }

    #[test]
    fn a_timed_out_xid_stays_reserved_until_its_late_reply() {
        let now = t0();
        let mut table = CallTable::new(1, 8, 8);
        let a = table.start(now + Duration::from_secs(1), 'a').unwrap();
        assert_eq!(table.next_deadline(), Some(now + Duration::from_secs(1)));
        assert!(table.expire(now).is_empty());
        table.mark_sent(a);
        assert_eq!(
            table.expire(now + Duration::from_secs(1)),
            vec![Failed {
                xid: a,
                waiter: 'a',
                sent: true
            }]
        );
        assert_eq!((table.live(), table.reserved()), (0, 1));
        // The counter wraps all the way round: `a` must not be reissued.
        table.next_xid = a;
        let b = table.start(now, 'b').unwrap();
        assert_ne!(b, a);
        assert_eq!(table.reply(a), ReplyFor::Late);
        assert_eq!(table.reserved(), 0);
        assert_eq!(table.stats().late_replies, 1);
        assert_eq!(table.stats().timed_out, 1);
    }

    #[test]
    fn the_limit_counts_live_calls() {
        let now = t0();
        let mut table = CallTable::new(1, 2, 8);
        let a = table.start(now, 'a').unwrap();
        table.start(now, 'b').unwrap();
        assert_eq!(table.start(now, 'c'), Err('c'));
        table.abandon(a, true);
        assert!(table.has_room());
        assert_eq!(table.reserved(), 1);
    }

    #[test]
    fn abandoning_an_unqueued_call_frees_its_xid() {
        let now = t0();
        let mut table = CallTable::new(1, 2, 8);
        let a = table.start(now, 'a').unwrap();
        assert_eq!(table.abandon(a, false), Some('a'));
        assert_eq!((table.live(), table.reserved()), (0, 0));
        assert_eq!(table.reply(a), ReplyFor::Unknown);
    }

    #[test]
    fn close_fails_every_live_call_and_says_if_it_was_sent() {
        let now = t0();
        let mut table = CallTable::new(1, 8, 8);
        let a = table.start(now, 'a').unwrap();
        let b = table.start(now, 'b').unwrap();
        table.mark_sent(b);
        let c = table.start(now, 'c').unwrap();
        table.abandon(c, true);
        let failed = table.close();
        assert_eq!(
            failed,
            vec![
                Failed {
                    xid: a,
                    waiter: 'a',
                    sent: false
                },
                Failed {
                    xid: b,
                    waiter: 'b',
                    sent: true
                }
            ]
        );
        assert_eq!((table.live(), table.reserved()), (0, 0));
    }

    #[test]
    fn clogged_when_too_many_xids_are_reserved() {
        let now = t0();
        let mut table = CallTable::new(1, 8, 1);
        for _ in 0..2 {
            let x = table.start(now, ()).unwrap();
            table.abandon(x, true);
        }
        assert!(table.is_clogged());
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
