//! What both connection drivers build on their byte stream: the batching
//! writer ([`poll_flush`]), the cooperative yield ([`poll_yield`]), the one
//! timer per connection ([`Timer`]) and the clock that gives a quiet
//! connection's buffers back ([`QuietClock`]).
//!
//! Writing goes through [`crate::conn::Outbox`]: whole records queued in
//! one buffer, written with as few syscalls as the kernel allows, each
//! record reported *sent* as soon as its first byte is taken.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use crate::conn::Outbox;
use crate::stream::Transport;

/// Writes the outbox until it is empty (`Ready(Ok)`) or the stream takes
/// no more (`Pending`, with the waker registered). `sent` gets the tag of
/// each record as its first byte is taken.
pub(crate) fn poll_flush<T>(
    transport: &mut Transport,
    cx: &mut Context<'_>,
    outbox: &mut Outbox<T>,
    mut sent: impl FnMut(T),
) -> Poll<io::Result<()>> {
    while !outbox.is_empty() {
        let n = ready!(Pin::new(&mut *transport).poll_write(cx, outbox.pending()))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        outbox.consumed(n, &mut sent);
    }
    transport.poll_flush_buffered(cx)
}

/// tokio's cooperative budget: units of work a task may do in one poll.
const COOP_BUDGET: usize = 128;

/// Ends a busy poll the way tokio's own resources do when a task's
/// cooperative budget is spent: spends the rest of the budget, so that
/// tokio polls the I/O and timer drivers and runs the other tasks before it
/// wakes this one again (a plain `wake_by_ref` puts the task straight back
/// in the run queue). Where the budget is unconstrained (outside a tokio
/// runtime, or in `tokio::task::coop::unconstrained`) it wakes the task at
/// once, after at most [`COOP_BUDGET`] tries.
pub(crate) fn poll_yield<T>(cx: &mut Context<'_>) -> Poll<T> {
    for _ in 0..=COOP_BUDGET {
        match tokio::task::coop::poll_proceed(cx) {
            Poll::Ready(restore) => restore.made_progress(),
            Poll::Pending => return Poll::Pending,
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// A connection's one timer, armed for the earliest of its deadlines and
/// moved only earlier: when the next deadline moves later (every reply
/// pushes a ping back, every record the idle timer), the timer fires early
/// once and is re-armed, instead of a timer-wheel update per event.
pub(crate) struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
        }
    }

    /// Arms the timer for `wake` if that is earlier than what it is armed
    /// for, and polls it. True when it fired: the caller must look at its
    /// deadlines again.
    pub(crate) fn poll_at(&mut self, wake: Option<Instant>, cx: &mut Context<'_>) -> bool {
        if let Some(wake) = wake
            && self.armed.is_none_or(|at| wake < at)
        {
            self.sleep.as_mut().reset(wake);
            self.armed = Some(wake);
        }
        if self.armed.is_some() && self.sleep.as_mut().poll(cx).is_ready() {
            self.armed = None;
            return true;
        }
        false
    }
}

/// A connection quiet for this long gives its buffers back.
const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// When a quiet connection gives its buffers back: after a quiet second,
/// not at every pause, so that a steady trickle of calls reuses them.
#[derive(Debug, Default)]
pub(crate) struct QuietClock {
    since: Option<Instant>,
}

/// What [`QuietClock::check`] says.
pub(crate) enum Quiet {
    /// Busy, or holding nothing: nothing to do.
    No,
    /// Quiet long enough: give the buffers back now.
    Release,
    /// Quiet, holding buffers: look again at this instant.
    At(Instant),
}

impl QuietClock {
    /// `quiet`: nothing in progress and no byte held; `holding`: buffers
    /// still have memory.
    pub(crate) fn check(&mut self, quiet: bool, holding: bool, now: Instant) -> Quiet {
        if !quiet {
            self.since = None;
            return Quiet::No;
        }
        if !holding {
            return Quiet::No;
        }
        let since = *self.since.get_or_insert(now);
        if now >= since + RELEASE_AFTER {
            Quiet::Release
        } else {
            Quiet::At(since + RELEASE_AFTER)
        }
    }
}
