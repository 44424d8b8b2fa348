//! The TLS streams of both sides: how much rustls encrypts per write, and,
//! on the client, the bytes the server sent before a fatal alert read
//! before the alert's error.
//!
//! rustls queues at most 64 KiB of records by default, so tokio-rustls
//! took a 1 MiB message 64 KiB at a time, each piece encrypted and then
//! handed to its own `writev`. Both sides let it queue
//! [`WRITE_BATCH`] instead ([`batch_writes`]): our outbox already bounds
//! what waits to be written, and the batch is written with one vectored
//! write (rustls hands up to 64 records, 1 MiB, to one).
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

use rustls::{ConnectionCommon, SideData};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use crate::stream::Transport;

/// The most plaintext rustls encrypts per write, and so about the most TLS
/// bytes it holds for the socket (per connection, only while the socket
/// is slower than the writer): 64 records of 16 KiB, as many as rustls
/// hands to one vectored write, so a 1 MiB message goes out in one
/// `writev` where the socket takes it. (A 256 KiB batch measured lower
/// with loadgen at 1 MiB x 16: 0.69 and 0.59 of plain TCP, against 0.76
/// and 0.89 with 1 MiB, in the same session of a noisy machine.)
pub(crate) const WRITE_BATCH: usize = 1024 * 1024;

/// Lets a session's writes take [`WRITE_BATCH`] bytes (see the module
/// docs).
pub(crate) fn batch_writes<S: SideData>(session: &mut ConnectionCommon<S>) {
    session.set_buffer_limit(Some(WRITE_BATCH));
}

/// A client's TLS session over any byte stream (see the module docs).
pub(crate) struct ClientStream {
    inner: TlsStream<Transport>,
    /// The session failed with this: given out once the plaintext
    /// decrypted before it has been read.
    failed: Option<io::Error>,
}

impl ClientStream {
    pub(crate) fn new(inner: TlsStream<Transport>) -> ClientStream {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, ServerConfig};
    use tokio::io::{AsyncWriteExt, DuplexStream};

    use super::*;

    /// One end of an in-memory pipe that writes a vectored write whole, as
    /// a socket's `writev` does, and counts the writes.
    struct Socket {
        pipe: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().pipe).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(data)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let mut total = 0;
            for slice in data {
                // The pipe is larger than anything a test writes.
                match Pin::new(&mut this.pipe).poll_write(cx, slice) {
                    Poll::Ready(Ok(n)) => {
                        assert_eq!(n, slice.len(), "the pipe took a slice in part");
                        total += n;
                    }
                    other => return other,
                }
            }
            this.writes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(total))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().pipe).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().pipe).poll_shutdown(cx)
        }
    }

    /// A client and a server stream after a TLS 1.3 handshake over a
    /// pipe, their writes batched as the handshakes leave them, and the
    /// count of the client's socket writes.
    async fn pair() -> (
        tokio_rustls::client::TlsStream<Socket>,
        tokio_rustls::server::TlsStream<Socket>,
        Arc<AtomicUsize>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["server.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (a, b) = tokio::io::duplex(16 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let client_socket = Socket {
            pipe: a,
            writes: writes.clone(),
        };
        let server_socket = Socket {
            pipe: b,
            writes: Arc::new(AtomicUsize::new(0)),
        };
        let name = ServerName::try_from("server.test").unwrap();
        let (client, server) = tokio::join!(
            tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, client_socket),
            tokio_rustls::TlsAcceptor::from(Arc::new(server)).accept(server_socket),
        );
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        batch_writes(client.get_mut().1);
        batch_writes(server.get_mut().1);
        writes.store(0, Ordering::Relaxed);
        (client, server, writes)
    }

    /// A 4 MiB message is encrypted `WRITE_BATCH` (1 MiB) at a time and
    /// each batch of records goes to the socket in one vectored write: 4
    /// writes, not one per 64 KiB (64) or per record (256).
    #[tokio::test]
    async fn a_large_write_goes_to_the_socket_in_one_vectored_write_per_batch() {
        let (mut client, _server, writes) = pair().await;
        let message = vec![0x5a; 4 << 20];
        client.write_all(&message).await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(writes.load(Ordering::Relaxed), message.len() / WRITE_BATCH);
    }
}
