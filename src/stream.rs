//! The byte stream under both drivers (TCP, Unix, TLS, or any `AsyncRead +
//! AsyncWrite`): reads into a buffer that is allocated only when bytes
//! arrive. What the drivers build on it (the batching writer, the timer,
//! the cooperative yield) is in [`crate::drive`].
//!
//! A TCP or Unix stream is read by readiness: the driver waits until the socket is
//! readable and only then makes sure the read buffer has room, so an idle
//! connection holds no read buffer. Any other byte stream (a tunnel, a
//! test's duplex pipe) is read through `AsyncRead` into a buffer.
//!
//! Writing goes through [`crate::drive::poll_flush`]: whole records queued
//! in one buffer, written with as few syscalls as the kernel allows.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

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

    /// True while the stream holds bytes it took but may not have written
    /// (see [`Transport::poll_flush_buffered`]): the driver must flush
    /// again when woken.
    pub(crate) fn unflushed(&self) -> bool {
        self.unflushed
    }

    /// True when an idle connection can give its read buffer back (TCP is
    /// read by readiness; any other stream needs a buffer to poll).
    pub(crate) fn reads_by_readiness(&self) -> bool {
        matches!(self.io, Stream::Tcp(_) | Stream::Unix(_))
    }

    /// Flushes a stream that may buffer what it takes (TLS, or any stream
    /// we know nothing of); TCP and Unix take each write whole. Until its
    /// flush is done, [`Transport::unflushed`] says so, and the driver
    /// calls this again when woken, even with its outbox empty.
    pub(crate) fn poll_flush_buffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.reads_by_readiness() {
            return Poll::Ready(Ok(()));
        }
        self.unflushed = true;
        ready!(Pin::new(&mut *self).poll_flush(cx))?;
        self.unflushed = false;
        Poll::Ready(Ok(()))
    }

    /// The connection went quiet: start again from a small read chunk.
    pub(crate) fn quiet(&mut self) {
        self.chunk = READ_CHUNK;
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
        match &self.io {
            Stream::Tcp(stream) => ready!(stream.poll_read_ready(cx))?,
            Stream::Unix(stream) => ready!(stream.poll_read_ready(cx))?,
            Stream::Other(_) => {}
        }
        if buf.capacity() - buf.len() < self.chunk / 2 {
            buf.reserve(self.chunk);
        }
        let room = buf.capacity() - buf.len();
        let read = match &mut self.io {
            Stream::Tcp(stream) => tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf),
            Stream::Unix(stream) => tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf),
            Stream::Other(io) => tokio_util::io::poll_read_buf(Pin::new(io), cx, buf),
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
