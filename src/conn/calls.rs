//! The client's pure call table: XIDs, deadlines and the slots that bound
//! calls in flight. Time is passed in; nothing here sleeps or does I/O.
//!
//! [`CallTable`] is what keeps replies with their callers. Its rules:
//!
//! - XIDs come from a per-connection counter with a random start, and an
//!   XID still in the table is never handed out again.
//! - A call whose deadline passes is failed, but its XID stays *reserved*
//!   until its late reply arrives (dropped and counted) or the connection
//!   closes. The same holds for a call whose caller went away after its
//!   record was queued. So a late reply can never reach a newer call.
//! - A reply whose XID is not in the table is dropped and counted.
//! - A caller's call holds one of the connection's in-flight *slots* from
//!   the moment it enters the table until its XID is freed: by its reply,
//!   its late reply, or the connection closing. A reserved XID keeps its
//!   slot, so abandoned and timed-out calls count against the in-flight
//!   limit and new calls wait for a slot; they can never pile up without
//!   bound and force the connection closed under other callers. (Pings
//!   hold no slot.)
//! - The connection is *clogged* only when no call is live, every slot is
//!   held by a reserved XID, and none of them has been answered for a
//!   whole hold period: closing it then fails nobody's call, and frees the
//!   slots for the callers waiting.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// Hashes XIDs by one multiplication. XIDs are ours (a counter), never the
/// peer's choice, so no keyed hash is needed to resist flooding; SipHash
/// cost more than the rest of the table's work per call.
#[derive(Default)]
struct XidHasher(u64);

impl Hasher for XidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, xid: u32) {
        // The high bits pick hashbrown's control bytes: spread them.
        self.0 = u64::from(xid).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type XidMap<V> = HashMap<u32, V, BuildHasherDefault<XidHasher>>;

/// Deadlines in order, for the earliest one. Calls with the same timeout
/// start in deadline order, so nearly every insert is a push at the back;
/// an entry whose call is answered is left in place and skipped (and
/// compacted away once stale entries outnumber live ones), which costs far
/// less per call than a search tree's insert and remove.
#[derive(Debug, Default)]
struct Deadlines {
    queue: VecDeque<(Instant, u32)>,
}

impl Deadlines {
    fn insert(&mut self, deadline: Instant, xid: u32) {
        match self.queue.back() {
            Some(&(last, _)) if last > deadline => {
                let at = self.queue.partition_point(|&(d, _)| d <= deadline);
                self.queue.insert(at, (deadline, xid));
            }
            _ => self.queue.push_back((deadline, xid)),
        }
    }

    /// Drops stale entries at the front; `live(deadline, xid)` says whether
    /// an entry still stands for a live call.
    fn front(&mut self, live: impl Fn(Instant, u32) -> bool) -> Option<(Instant, u32)> {
        while let Some(&(deadline, xid)) = self.queue.front() {
            if live(deadline, xid) {
                return Some((deadline, xid));
            }
            self.queue.pop_front();
        }
        None
    }

    /// Keeps the queue within twice the live calls (plus a little).
    fn compact(&mut self, live_calls: usize, live: impl Fn(Instant, u32) -> bool) {
        if self.queue.len() > 2 * live_calls + 64 {
            self.queue.retain(|&(d, x)| live(d, x));
            if self.queue.capacity() > 4 * self.queue.len() + 64 {
                self.queue.shrink_to_fit();
            }
        }
    }

    fn clear(&mut self) {
        self.queue = VecDeque::new();
    }
}

/// Counters a connection keeps about its calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls started.
    pub started: u64,
    /// Replies matched to a live call.
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
        slot: bool,
    },
    /// Nobody waits, but a reply may still come: the XID stays reserved,
    /// and its slot stays held.
    Reserved { slot: bool },
}

/// What became of a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyFor<W> {
    /// Deliver it to this waiter. Its slot, if it held one, is free.
    Caller(W),
    /// Its call already timed out or was abandoned: dropped, counted.
    Late {
        /// True when the reservation held a slot, now free.
        freed_slot: bool,
    },
    /// No call has this XID: dropped, counted.
    Unknown,
}

/// A waiter failed by [`CallTable::expire`] or [`CallTable::close`], and
/// whether any byte of its request had been handed to the kernel (it may
/// have run) or none (safe to retry).
#[derive(Debug, PartialEq, Eq)]
pub struct Failed<W> {
    /// The XID.
    pub xid: u32,
    /// The waiter.
    pub waiter: W,
    /// True when a byte of the request reached the socket.
    pub sent: bool,
}

/// Calls in flight on one connection, by XID. `W` is whatever wakes the
/// caller.
#[derive(Debug)]
pub struct CallTable<W> {
    next_xid: u32,
    entries: XidMap<Entry<W>>,
    deadlines: Deadlines,
    live: usize,
    live_slots: usize,
    reserved: usize,
    reserved_slots: usize,
    /// When an XID last became reserved.
    last_reserved: Option<Instant>,
    stats: CallStats,
}

impl<W> CallTable<W> {
    /// A table whose first XID is `first_xid` (pick it at random).
    pub fn new(first_xid: u32) -> CallTable<W> {
        CallTable {
            next_xid: first_xid,
            entries: XidMap::default(),
            deadlines: Deadlines::default(),
            live: 0,
            live_slots: 0,
            reserved: 0,
            reserved_slots: 0,
            last_reserved: None,
            stats: CallStats::default(),
        }
    }

    /// Live calls (pings included).
    pub fn live(&self) -> usize {
        self.live
    }

    /// XIDs reserved for replies nobody waits for.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Slots held: live callers' calls plus their reservations.
    pub fn slots(&self) -> usize {
        self.live_slots + self.reserved_slots
    }

    /// The counters.
    pub fn stats(&self) -> CallStats {
        self.stats
    }

    /// When the table counts as clogged, given `limit` slots and the
    /// `hold` period: `None` while a call is live or a slot is free.
    pub fn clogged_at(&self, limit: usize, hold: Duration) -> Option<Instant> {
        if self.live_slots > 0 || self.reserved_slots < limit.max(1) {
            return None;
        }
        self.last_reserved.map(|at| at + hold)
    }

    /// Starts a call and returns its XID. `slot`: the call holds one of
    /// the connection's in-flight slots (a caller's call; not a ping).
    pub fn start(&mut self, deadline: Instant, waiter: W, slot: bool) -> u32 {
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
                slot,
            },
        );
        self.deadlines.insert(deadline, xid);
        let entries = &self.entries;
        self.deadlines
            .compact(self.live, |d, x| is_live_at(entries, d, x));
        self.live += 1;
        self.live_slots += usize::from(slot);
        self.stats.started += 1;
        xid
    }

    /// Records that a byte of the call's request reached the socket.
    pub fn mark_sent(&mut self, xid: u32) {
        if let Some(Entry::Live { sent, .. }) = self.entries.get_mut(&xid) {
            *sent = true;
        }
    }

    /// Matches a reply to its call.
    pub fn reply(&mut self, xid: u32) -> ReplyFor<W> {
        match self.entries.remove(&xid) {
            Some(Entry::Live { waiter, slot, .. }) => {
                self.live -= 1;
                self.live_slots -= usize::from(slot);
                self.stats.replied += 1;
                ReplyFor::Caller(waiter)
            }
            Some(Entry::Reserved { slot }) => {
                self.reserved -= 1;
                self.reserved_slots -= usize::from(slot);
                self.stats.late_replies += 1;
                ReplyFor::Late { freed_slot: slot }
            }
            None => {
                self.stats.unknown_replies += 1;
                ReplyFor::Unknown
            }
        }
    }

    /// The caller went away at `now`. Its request is queued or written, so
    /// the XID stays reserved, with its slot. Returns the waiter.
    pub fn abandon(&mut self, xid: u32, now: Instant) -> Option<W> {
        let Some(Entry::Live { .. }) = self.entries.get(&xid) else {
            return None;
        };
        self.stats.abandoned += 1;
        self.reserve(xid, now).map(|(waiter, _)| waiter)
    }

    /// Turns a live entry into a reservation.
    fn reserve(&mut self, xid: u32, now: Instant) -> Option<(W, bool)> {
        let entry = self.entries.get_mut(&xid)?;
        let Entry::Live { slot, .. } = *entry else {
            return None;
        };
        let Entry::Live { waiter, sent, .. } = std::mem::replace(entry, Entry::Reserved { slot })
        else {
            unreachable!("matched as live above");
        };
        self.live -= 1;
        self.live_slots -= usize::from(slot);
        self.reserved += 1;
        self.reserved_slots += usize::from(slot);
        self.last_reserved = Some(now);
        Some((waiter, sent))
    }

    /// The earliest deadline, for the driver's timer.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let entries = &self.entries;
        self.deadlines
            .front(|d, x| is_live_at(entries, d, x))
            .map(|(d, _)| d)
    }

    /// Fails every call whose deadline is at or before `now`; their XIDs
    /// stay reserved. Hands each to `failed`, saying whether its request
    /// had been sent.
    pub fn expire(&mut self, now: Instant, mut failed: impl FnMut(Failed<W>)) {
        loop {
            let entries = &self.entries;
            let Some((deadline, xid)) = self.deadlines.front(|d, x| is_live_at(entries, d, x))
            else {
                break;
            };
            if deadline > now {
                break;
            }
            self.deadlines.queue.pop_front();
            if let Some((waiter, sent)) = self.reserve(xid, now) {
                self.stats.timed_out += 1;
                failed(Failed { xid, waiter, sent });
            }
        }
    }

    /// The connection closed: fails every live call (in XID order), saying
    /// whether its request was sent, and frees every XID. Returns the
    /// number of slots freed.
    pub fn close(&mut self, mut failed: impl FnMut(Failed<W>)) -> usize {
        let slots = self.slots();
        self.deadlines.clear();
        self.live = 0;
        self.live_slots = 0;
        self.reserved = 0;
        self.reserved_slots = 0;
        let mut live: Vec<(u32, W, bool)> = self
            .entries
            .drain()
            .filter_map(|(xid, entry)| match entry {
                Entry::Live { waiter, sent, .. } => Some((xid, waiter, sent)),
                Entry::Reserved { .. } => None,
            })
            .collect();
        live.sort_by_key(|(xid, ..)| *xid);
        for (xid, waiter, sent) in live {
            failed(Failed { xid, waiter, sent });
        }
        slots
    }
}

/// True when `xid` is a live call whose deadline is `deadline`: a queue
/// entry left behind by an answered call (whose XID may since have been
/// reused, with another deadline) is not.
fn is_live_at<W>(entries: &XidMap<Entry<W>>, deadline: Instant, xid: u32) -> bool {
    matches!(entries.get(&xid), Some(Entry::Live { deadline: d, .. }) if *d == deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn expire<W>(table: &mut CallTable<W>, now: Instant) -> Vec<Failed<W>> {
        let mut out = Vec::new();
        table.expire(now, |f| out.push(f));
        out
    }

    fn close<W>(table: &mut CallTable<W>) -> Vec<Failed<W>> {
        let mut out = Vec::new();
        table.close(|f| out.push(f));
        out
    }

    #[test]
    fn xids_count_up_from_the_start_and_skip_those_in_use() {
        let now = t0();
        let mut table = CallTable::new(u32::MAX - 1);
        let a = table.start(now, 'a', true);
        let b = table.start(now, 'b', true);
        let c = table.start(now, 'c', true);
        assert_eq!((a, b, c), (u32::MAX - 1, u32::MAX, 0));
        let mut table = CallTable::new(5);
        let five = table.start(now + Duration::from_secs(9), 'x', true);
        table.next_xid = 5;
        assert_eq!(table.start(now, 'y', true), 6, "5 is in use");
        assert_eq!(five, 5);
    }

    #[test]
    fn replies_go_to_their_caller_once() {
        let now = t0();
        let mut table = CallTable::new(100);
        let a = table.start(now, 'a', true);
        let b = table.start(now, 'b', true);
        assert_eq!(table.reply(b), ReplyFor::Caller('b'));
        assert_eq!(table.reply(b), ReplyFor::Unknown, "a duplicate is unknown");
        assert_eq!(table.reply(a), ReplyFor::Caller('a'));
        assert_eq!(table.reply(7), ReplyFor::Unknown);
        assert_eq!(table.stats().unknown_replies, 2);
        assert_eq!(table.slots(), 0);
    }

    #[test]
    fn a_timed_out_xid_stays_reserved_with_its_slot_until_its_late_reply() {
        let now = t0();
        let mut table = CallTable::new(1);
        let a = table.start(now + Duration::from_secs(1), 'a', true);
        assert_eq!(table.next_deadline(), Some(now + Duration::from_secs(1)));
        assert!(expire(&mut table, now).is_empty());
        table.mark_sent(a);
        assert_eq!(
            expire(&mut table, now + Duration::from_secs(1)),
            vec![Failed {
                xid: a,
                waiter: 'a',
                sent: true
            }]
        );
        assert_eq!((table.live(), table.reserved(), table.slots()), (0, 1, 1));
        // The counter wraps all the way round: `a` must not be reissued.
        table.next_xid = a;
        let b = table.start(now, 'b', true);
        assert_ne!(b, a);
        assert_eq!(table.reply(a), ReplyFor::Late { freed_slot: true });
        assert_eq!((table.reserved(), table.slots()), (0, 1));
        assert_eq!(table.stats().late_replies, 1);
        assert_eq!(table.stats().timed_out, 1);
    }

    #[test]
    fn an_abandoned_call_keeps_its_xid_and_its_slot() {
        let now = t0();
        let mut table = CallTable::new(1);
        let a = table.start(now, 'a', true);
        table.start(now, 'b', true);
        assert_eq!(table.abandon(a, now), Some('a'));
        assert_eq!((table.live(), table.reserved(), table.slots()), (1, 1, 2));
        assert_eq!(table.abandon(a, now), None, "only once");
        assert_eq!(table.reply(a), ReplyFor::Late { freed_slot: true });
        assert_eq!(table.slots(), 1);
    }

    #[test]
    fn pings_hold_no_slot() {
        let now = t0();
        let mut table = CallTable::new(1);
        let ping = table.start(now, 'p', false);
        assert_eq!((table.live(), table.slots()), (1, 0));
        expire(&mut table, now);
        assert_eq!(table.reply(ping), ReplyFor::Late { freed_slot: false });
    }

    #[test]
    fn close_fails_every_live_call_says_if_it_was_sent_and_frees_all_slots() {
        let now = t0();
        let mut table = CallTable::new(1);
        let a = table.start(now, 'a', true);
        let b = table.start(now, 'b', true);
        table.mark_sent(b);
        let c = table.start(now, 'c', true);
        table.abandon(c, now);
        let mut failed = Vec::new();
        assert_eq!(table.close(|f| failed.push(f)), 3);
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
        assert_eq!((table.live(), table.reserved(), table.slots()), (0, 0, 0));
        assert!(close(&mut table).is_empty());
    }

    #[test]
    fn clogged_only_when_every_slot_is_reserved_and_no_call_is_live() {
        let now = t0();
        let hold = Duration::from_secs(5);
        let mut table = CallTable::new(1);
        let a = table.start(now, (), true);
        let b = table.start(now, (), true);
        table.abandon(a, now);
        assert_eq!(table.clogged_at(2, hold), None, "b is live");
        let later = now + Duration::from_secs(1);
        table.abandon(b, later);
        assert_eq!(table.clogged_at(2, hold), Some(later + hold));
        assert_eq!(table.clogged_at(3, hold), None, "a slot is free");
        table.reply(a);
        assert_eq!(table.clogged_at(2, hold), None);
    }
}
