//! The state a client's callers and its connection task share, under one
//! short lock.
//!
//! A caller takes an in-flight slot (a semaphore permit), then, under the
//! lock, registers a waiter and, when connected, encodes its record straight
//! into the connection's outbox. It wakes the connection task only when the
//! task is not already due to look (one wake-up per batch, not per call).
//! The task writes the outbox, reads replies, and fills each waiter's
//! outcome under the lock; the caller's own task takes it. No channel, no
//! per-call allocation, no hand-off through another task on the way out.
//!
//! Slots: a call holds its permit from the moment it is queued until its
//! XID is freed (see [`crate::conn::calls`]): by its reply, its late reply,
//! the connection closing, or, for a call still waiting for a connection,
//! its deadline or its caller going away.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::{ClientOptions, ClientStats, ConnectionState};
use crate::addr::Address;
use crate::conn::{CallTable, Outbox};
use crate::error::Error;
use crate::peer::hello::HelloReply;
use crate::proto::CallHeader;
use crate::proto::xdr::{XdrEncode, XdrWriter, to_bytes};

/// A call's outcome.
pub(super) type Answer = Result<Bytes, Error>;

/// What waits on an XID: a caller's slot, or our own ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Waiter {
    Call(usize),
    Ping,
}

/// What a caller needs to name its call in an error.
#[derive(Clone, Copy, Debug)]
pub(super) struct CallInfo {
    pub program: u32,
    pub version: u32,
    pub procedure: u32,
    pub timeout: Duration,
}

#[derive(Debug)]
enum SlotState {
    Free,
    /// The call waits; `xid` once it is in the connection's table.
    Waiting {
        waker: Option<Waker>,
        xid: Option<u32>,
    },
    Done(Answer),
}

#[derive(Debug)]
struct Slot {
    /// Bumped each time the slot is reused, so a stale key finds nothing.
    generation: u32,
    info: CallInfo,
    state: SlotState,
}

/// A caller's handle on its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    index: usize,
    generation: u32,
}

/// Waiters, reused from call to call.
#[derive(Debug, Default)]
pub(super) struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl Slots {
    fn insert(&mut self, info: CallInfo, waker: Waker) -> Key {
        let state = SlotState::Waiting {
            waker: Some(waker),
            xid: None,
        };
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index];
                slot.generation = slot.generation.wrapping_add(1);
                slot.info = info;
                slot.state = state;
                Key {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    info,
                    state,
                });
                Key {
                    index: self.slots.len() - 1,
                    generation: 0,
                }
            }
        }
    }

    fn get(&mut self, key: Key) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index)
            .filter(|s| s.generation == key.generation && !matches!(s.state, SlotState::Free))
    }

    fn remove(&mut self, index: usize) {
        self.slots[index].state = SlotState::Free;
        self.free.push(index);
        if self.free.len() == self.slots.len() && self.slots.capacity() > 8 {
            // Every slot is free: give the memory back (an idle client).
            self.slots = Vec::new();
            self.free = Vec::new();
        }
    }

    /// Records the XID a queued call got on a new connection.
    pub(super) fn set_xid(&mut self, index: usize, xid: u32) {
        if let SlotState::Waiting { xid: slot_xid, .. } = &mut self.slots[index].state {
            *slot_xid = Some(xid);
        }
    }

    pub(super) fn info(&self, index: usize) -> CallInfo {
        self.slots[index].info
    }

    /// Fills a waiting slot's outcome; returns its waker.
    pub(super) fn finish(&mut self, index: usize, answer: Answer) -> Option<Waker> {
        let slot = &mut self.slots[index];
        match std::mem::replace(&mut slot.state, SlotState::Done(answer)) {
            SlotState::Waiting { waker, .. } => waker,
            other => {
                slot.state = other;
                None
            }
        }
    }
}

/// A call waiting for a connection.
#[derive(Debug)]
pub(super) struct Queued {
    pub slot: usize,
    pub header: CallHeader,
    pub args: Bytes,
    pub deadline: Instant,
}

/// The live connection's share of the state.
#[derive(Debug)]
pub(super) struct Live {
    pub table: CallTable<Waiter>,
    /// Records queued by callers, not yet taken by the task.
    pub outbox: Outbox<u32>,
}

/// Everything under the lock.
#[derive(Debug, Default)]
pub(super) struct Core {
    pub slots: Slots,
    /// Calls waiting for a connection.
    pub queue: VecDeque<Queued>,
    /// Set while connected.
    pub live: Option<Live>,
    /// The client was closed.
    pub closed: bool,
    /// [`super::Client::connect`] waits for a connection.
    pub want_connect: bool,
    /// The task has been woken and has not looked yet: no need to wake it
    /// again.
    pub woken: bool,
    /// The instant the task's timer is armed for: a call with an earlier
    /// deadline must wake it.
    pub timer: Option<Instant>,
    /// Outcomes taken by callers, counted under the lock they are taken
    /// under (no atomic per call).
    pub outcomes: Outcomes,
}

/// Outcomes delivered to waiting callers.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Outcomes {
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub sent: AtomicU64,
    pub late_replies: AtomicU64,
    pub unknown_replies: AtomicU64,
    pub unexpected_calls: AtomicU64,
    pub reconnects: AtomicU64,
}

impl Counters {
    pub(super) fn bump(counter: &AtomicU64, by: u64) {
        if by > 0 {
            counter.fetch_add(by, Ordering::Relaxed);
        }
    }

    pub(super) fn snapshot(&self, outcomes: Outcomes) -> ClientStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            sent: get(&self.sent),
            succeeded: outcomes.succeeded,
            failed: outcomes.failed,
            timed_out: outcomes.timed_out,
            late_replies: get(&self.late_replies),
            unknown_replies: get(&self.unknown_replies),
            unexpected_calls: get(&self.unexpected_calls),
            reconnects: get(&self.reconnects),
        }
    }
}

/// What the client's handles and its task share.
#[derive(Debug)]
pub(super) struct Inner {
    pub peer: Address,
    pub options: ClientOptions,
    pub counters: Counters,
    pub state: watch::Sender<ConnectionState>,
    /// Connection attempts finished, for [`super::Client::connect`].
    pub attempts: AtomicU64,
    /// Whether the last one was tried (false: refused by the open breaker).
    pub last_attempt_tried: AtomicBool,
    /// Consecutive failed connects, as the breaker counts them.
    pub failures: AtomicU32,
    pub hello: Mutex<Option<HelloReply>>,
    /// The server's certificate on the current link, over TLS.
    pub tls_peer: Mutex<Option<Arc<crate::tls::TlsPeer>>>,
    /// The TLS material: built from the options by the constructor (by the
    /// first TLS connect for [`super::Client::with_transport`]), replaced
    /// by [`super::Client::update_tls`].
    #[cfg(feature = "tls")]
    pub tls: Mutex<TlsMaterial>,
    /// [`TlsMaterial::epoch`], for a cheap look from the connection.
    #[cfg(feature = "tls")]
    pub tls_epoch: AtomicU64,
    /// The server's chain on the link just made, and the epoch of the
    /// material it passed: the connection takes it, to judge the chain
    /// again when the material changes.
    #[cfg(feature = "tls")]
    pub presented: Mutex<Option<(crate::tls::Presented, u64)>>,
    pub last_connect_error: Mutex<Option<Arc<Error>>>,
    /// In-flight slots.
    pub permits: Semaphore,
    pub core: Mutex<Core>,
    /// The connection task's waker.
    pub task: AtomicWaker,
}

/// A client's TLS material and its version.
#[cfg(feature = "tls")]
#[derive(Debug, Default)]
pub(super) struct TlsMaterial {
    /// Built by the constructor; `None` until the first TLS connect builds
    /// it for [`super::Client::with_transport`] (an error then is the
    /// connect's error); an update replaces it.
    pub material: Option<Result<Arc<crate::tls::ClientShared>, crate::tls::TlsError>>,
    /// Bumped by each update.
    pub epoch: u64,
}

#[cfg(feature = "tls")]
impl Inner {
    /// The TLS material in force (built from `settings`, the options'
    /// TLS, at the first call), and its epoch.
    pub(super) fn tls_material(
        &self,
        settings: &crate::tls::ClientTls,
    ) -> (
        Result<Arc<crate::tls::ClientShared>, crate::tls::TlsError>,
        u64,
    ) {
        let mut tls = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        let material = tls
            .material
            .get_or_insert_with(|| crate::tls::client_config(settings))
            .clone();
        (material, tls.epoch)
    }
}

/// A call's arguments as its caller gives them: XDR already ([`Bytes`]),
/// or a typed value ([`Typed`]) encoded straight into the outbox.
pub(super) trait CallArgs {
    /// Queues the call as one record; `xid` registers the call and gives
    /// its XID (asked once, after anything that may panic).
    fn push(self, outbox: &mut Outbox<u32>, header: &CallHeader, xid: impl FnOnce() -> u32);

    /// The arguments' XDR, for a call that waits for a connection.
    fn into_bytes(self) -> Bytes;
}

impl CallArgs for Bytes {
    fn push(self, outbox: &mut Outbox<u32>, header: &CallHeader, xid: impl FnOnce() -> u32) {
        let xid = xid();
        outbox.push_call(xid, xid, header, &self);
    }

    fn into_bytes(self) -> Bytes {
        self
    }
}

/// Typed arguments, encoded where the call is queued.
pub(super) struct Typed<'a, A: ?Sized>(pub &'a A);

impl<A: XdrEncode + ?Sized> CallArgs for Typed<'_, A> {
    fn push(self, outbox: &mut Outbox<u32>, header: &CallHeader, xid: impl FnOnce() -> u32) {
        let encode = |dst: &mut BytesMut| self.0.encode(&mut XdrWriter::new(dst));
        outbox.push_call_with(header, encode, || {
            let xid = xid();
            (xid, xid)
        });
    }

    fn into_bytes(self) -> Bytes {
        to_bytes(self.0)
    }
}

/// Gives a caller's permit back if registering its call unwinds.
struct Refund<'a>(&'a Semaphore);

impl Drop for Refund<'_> {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
}

/// What a caller must do after registering its call.
pub(super) struct Registered {
    pub key: Key,
    wake: bool,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic under the lock leaves plain data behind; go on with it.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the connection task.
    pub(super) fn wake_task(&self) {
        self.task.wake();
    }

    /// Closes the client: the task fails what is pending and ends; callers
    /// waiting for a slot fail at once.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.permits.close();
        self.wake_task();
    }

    /// Registers a call that holds a permit: into the live connection's
    /// table and outbox, or into the queue for the next connection.
    ///
    /// If encoding the arguments panics, nothing is registered, nothing is
    /// queued and the permit is given back: the caller's panic leaves the
    /// client as it was.
    pub(super) fn register(
        &self,
        info: CallInfo,
        header: &CallHeader,
        args: impl CallArgs,
        deadline: Instant,
        waker: &Waker,
    ) -> Result<Registered, Error> {
        let mut core = self.lock();
        if core.closed {
            drop(core);
            self.permits.add_permits(1);
            return Err(Error::ClientClosed {
                peer: self.peer.clone(),
            });
        }
        let refund = Refund(&self.permits);
        let core = &mut *core;
        let mut wake = core.timer.is_none_or(|at| deadline < at);
        let key = match &mut core.live {
            Some(live) => {
                let (slots, table) = (&mut core.slots, &mut live.table);
                let mut key = None;
                args.push(&mut live.outbox, header, || {
                    let k = slots.insert(info, waker.clone());
                    let xid = table.start(deadline.into_std(), Waiter::Call(k.index), true);
                    slots.set_xid(k.index, xid);
                    key = Some(k);
                    xid
                });
                wake |= live.outbox.records_waiting() == 1;
                key.expect("CallArgs::push asks for the XID")
            }
            None => {
                let args = args.into_bytes();
                let key = core.slots.insert(info, waker.clone());
                core.queue.push_back(Queued {
                    slot: key.index,
                    header: header.clone(),
                    args,
                    deadline,
                });
                wake = true;
                key
            }
        };
        std::mem::forget(refund);
        // One wake-up until the task looks again.
        let wake = wake && !std::mem::replace(&mut core.woken, true);
        Ok(Registered { key, wake })
    }

    /// Wakes the task if the registration asked for it.
    pub(super) fn kick(&self, registered: &Registered) {
        if registered.wake {
            self.wake_task();
        }
    }

    /// Polls a caller's slot for its outcome.
    pub(super) fn poll_answer(&self, key: Key, cx: &mut Context<'_>) -> Poll<Answer> {
        let mut core = self.lock();
        let Some(slot) = core.slots.get(key) else {
            // Unreachable while the caller holds its key; answer anyway.
            return Poll::Ready(Err(Error::ClientClosed {
                peer: self.peer.clone(),
            }));
        };
        match &mut slot.state {
            SlotState::Waiting { waker, .. } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            SlotState::Done(_) => {
                let SlotState::Done(answer) = std::mem::replace(&mut slot.state, SlotState::Free)
                else {
                    unreachable!("matched as done above");
                };
                core.slots.remove(key.index);
                let outcomes = &mut core.outcomes;
                match &answer {
                    Ok(_) => outcomes.succeeded += 1,
                    Err(Error::CallTimeout { .. }) => outcomes.timed_out += 1,
                    Err(_) => outcomes.failed += 1,
                }
                drop(core);
                Poll::Ready(answer)
            }
            SlotState::Free => unreachable!("get() skips free slots"),
        }
    }

    /// The caller went away before taking its outcome. A call in the
    /// connection's table keeps its XID reserved, and its permit, until the
    /// reply or the connection's end; a call still queued is dropped and
    /// its permit returned.
    pub(super) fn abandon(&self, key: Key) {
        let mut core = self.lock();
        let core = &mut *core;
        let Some(slot) = core.slots.get(key) else {
            return;
        };
        let mut release = false;
        match slot.state {
            SlotState::Waiting { xid: Some(xid), .. } => {
                if let Some(live) = &mut core.live {
                    live.table.abandon(xid, Instant::now().into_std());
                }
            }
            SlotState::Waiting { xid: None, .. } => {
                core.queue.retain(|q| q.slot != key.index);
                release = true;
            }
            // The outcome was filled but not taken: its permit is already
            // back.
            SlotState::Done(_) | SlotState::Free => {}
        }
        core.slots.remove(key.index);
        if release {
            self.permits.add_permits(1);
        }
    }
}
