//! The byte stream under both drivers: reads into a buffer that is
//! allocated only when bytes arrive, and the one batching writer.
//!
//! A TCP or Unix stream is read by readiness: the driver waits until the socket is
//! readable and only then makes sure the read buffer has room, so an idle
//! connection holds no read buffer. Any other byte stream (a tunnel, a
//! test's duplex pipe) is read through `AsyncRead` into a buffer.
//!
//! Writing goes through [`crate::conn::Outbox`]: whole records queued in
//! one buffer, written with as few syscalls as the kernel allows, each
//! record reported *sent* as soon as its first byte is taken.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, Sleep};

use crate::conn::Outbox;

/// Bytes reserved for a read when the buffer runs low, at first.
pub(crate) const READ_CHUNK: usize = 1024;

/// The most reserved for one read: the chunk doubles up to this while reads
/// fill it, so a busy connection reads many records per syscall.
pub(crate) const MAX_READ_CHUNK: usize = 64 * 1024;

/// A byte stream a client can run over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection's byte stream, and how much to reserve for a read.
pub(crate) struct Transport {
    io: Stream,
    chunk: usize,
    /// A stream that buffers (TLS) took bytes it may not have written
    /// yet: it must be flushed even once the outbox is empty.
    unflushed: bool,
}

enum Stream {
    /// TCP, read by readiness.
    Tcp(TcpStream),
    /// A Unix stream socket, read by readiness too.
    Unix(UnixStream),
    /// Anything else.
    Other(Box<dyn Io>),
    /// A TLS session over one of the above.
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::TlsStream>),
}

impl Transport {
    pub(crate) fn tcp(stream: TcpStream) -> Transport {
        Transport {
            io: Stream::Tcp(stream),
            chunk: READ_CHUNK,
            unflushed: false,
        }
    }

    pub(crate) fn unix(stream: UnixStream) -> Transport {
        Transport {
            io: Stream::Unix(stream),
            chunk: READ_CHUNK,
            unflushed: false,
        }
    }

    pub(crate) fn other(io: Box<dyn Io>) -> Transport {
        Transport {
            io: Stream::Other(io),
            chunk: READ_CHUNK,
            unflushed: false,
        }
    }

    /// A TLS session, its handshake done, as the connection's stream.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(session: crate::tls::TlsStream) -> Transport {
        Transport {
            io: Stream::Tls(Box::new(session)),
            chunk: READ_CHUNK,
            unflushed: false,
        }
    }

    /// True while the stream holds bytes it took but may not have written
    /// (see [`poll_flush`]): the driver must flush again when woken.
    pub(crate) fn unflushed(&self) -> bool {
        match &self.io {
            #[cfg(feature = "tls")]
            Stream::Tls(session) => session.unflushed(),
            _ => self.unflushed,
        }
    }

    /// True when an idle connection can give its read buffer back (TCP is
    /// read by readiness, and TLS over it; any other stream needs a buffer
    /// to poll).
    pub(crate) fn reads_by_readiness(&self) -> bool {
        match &self.io {
            Stream::Tcp(_) | Stream::Unix(_) => true,
            Stream::Other(_) => false,
            #[cfg(feature = "tls")]
            Stream::Tls(session) => session.reads_by_readiness(),
        }
    }

    /// True when the stream buffers what it takes (TLS, or a stream we
    /// know nothing of): [`poll_flush`] must flush it too.
    fn buffers_writes(&self) -> bool {
        !matches!(self.io, Stream::Tcp(_) | Stream::Unix(_))
    }

    /// The connection went quiet: start again from a small read chunk, and
    /// give back the buffers a TLS session holds empty.
    pub(crate) fn quiet(&mut self) {
        self.chunk = READ_CHUNK;
        #[cfg(feature = "tls")]
        if let Stream::Tls(session) = &mut self.io {
            session.quiet();
        }
    }

    /// Reads what is available into `buf`, reserving room only once bytes
    /// are there (for TCP). `Ready(Ok(0))` is the end of the stream.
    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        // Readiness first (TCP and Unix), so the buffer gets memory only
        // once bytes are there. tokio's read then treats a short read as
        // "drained" (epoll is edge-triggered), which saves the extra read
        // that would only return EAGAIN.
        match &mut self.io {
            Stream::Tcp(stream) => ready!(stream.poll_read_ready(cx))?,
            Stream::Unix(stream) => ready!(stream.poll_read_ready(cx))?,
            Stream::Other(_) => {}
            // The session reads its socket by readiness into its own
            // buffer, and appends plaintext to `buf`.
            #[cfg(feature = "tls")]
            Stream::Tls(session) => return session.poll_read_into(cx, buf),
        }
        if buf.capacity() - buf.len() < self.chunk / 2 {
            buf.reserve(self.chunk);
        }
        let room = buf.capacity() - buf.len();
        let read = match &mut self.io {
            Stream::Tcp(stream) => tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf),
            Stream::Unix(stream) => tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf),
            Stream::Other(io) => tokio_util::io::poll_read_buf(Pin::new(io), cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(_) => unreachable!("read above"),
        };
        if let Poll::Ready(Ok(n)) = read
            && n == room
        {
            // The read filled the room: more was probably waiting.
            self.chunk = (self.chunk * 2).min(MAX_READ_CHUNK);
        }
        read
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Other(io) => Pin::new(io).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(session) => session.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, data),
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, data),
            Stream::Other(io) => Pin::new(io).poll_write(cx, data),
            #[cfg(feature = "tls")]
            Stream::Tls(session) => session.poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Other(io) => Pin::new(io).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(session) => session.poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Other(io) => Pin::new(io).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(session) => session.poll_shutdown(cx),
        }
    }
}

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
    if transport.buffers_writes() {
        // A buffering stream (TLS) may hold the end of what it took; until
        // it is out, the driver calls this again when woken, even with the
        // outbox empty.
        transport.unflushed = true;
        ready!(Pin::new(&mut *transport).poll_flush(cx))?;
        transport.unflushed = false;
    }
    Poll::Ready(Ok(()))
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
