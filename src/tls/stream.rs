//! The client's TLS stream: the bytes the server sent before a fatal alert
//! are read before the alert's error.
//!
//! tokio-rustls decrypts every TLS record one read brings in; when one of
//! them is a fatal alert (or breaks the session), that read fails at once,
//! although the application data of the records before it waits, already
//! decrypted, in the session's plaintext buffer. A reply that the server
//! sent just before its alert, and that reached us in the same read, would
//! be lost with the session and its call reported lost. This stream hands
//! those bytes out first, then the error.

use std::io::{self, IoSlice, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use crate::stream::Io;

/// A client's TLS session over any byte stream (see the module docs).
pub(crate) struct ClientStream {
    inner: TlsStream<Box<dyn Io>>,
    /// The session failed with this: given out once the plaintext
    /// decrypted before it has been read.
    failed: Option<io::Error>,
}

impl ClientStream {
    pub(crate) fn new(inner: TlsStream<Box<dyn Io>>) -> ClientStream {
        ClientStream {
            inner,
            failed: None,
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.failed.is_none() {
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Err(error)) => this.failed = Some(error),
                other => return other,
            }
        }
        let (_, session) = this.inner.get_mut();
        match session.reader().read(buf.initialize_unfilled()) {
            Ok(n) if n > 0 => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            _ => Poll::Ready(Err(this.failed.take().expect("the session failed"))),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
