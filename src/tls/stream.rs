//! A TLS session over a connection's byte stream, on rustls's unbuffered
//! API: we own the buffers and decide how much each syscall moves.
//!
//! - **Reading.** TLS bytes are read into one buffer by readiness (TCP and
//!   Unix), in the same growing chunks as plain TCP (up to 64 KiB per
//!   read), and each record is decrypted where it lies; its plaintext is
//!   appended straight to the driver's read buffer. (rustls's buffered API
//!   reads at most 4 KiB per syscall: more than 256 reads for a 1 MiB
//!   message.) An idle session holds no buffer.
//! - **Writing.** What the outbox hands over is encrypted, up to
//!   [`WRITE_BATCH`] at a time, into one reused buffer of records, which
//!   goes to the socket in one write where the socket takes it. More is
//!   taken only once the last batch is out, so at most one batch waits
//!   here per connection.
//! - **Order.** Records are read one by one: the plaintext of the records
//!   before a fatal alert (a reply the server sent just before refusing
//!   us) is handed out first, and the error after it.
//! - **Errors.** A session that fails queues its alert, which is written
//!   before the error is given out; after that every call gives the same
//!   error.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use rustls::CommonState;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use tokio::io::{AsyncWrite, ReadBuf};

use crate::stream::Transport;

/// The most plaintext encrypted per write: 64 records of 16 KiB. (With
/// rustls's buffered API a batch of 256 KiB measured lower than 1 MiB
/// with loadgen at 1 MiB x 16: 0.69 and 0.59 of plain TCP, against 0.76
/// and 0.89, in the same session of a noisy machine.)
pub(crate) const WRITE_BATCH: usize = 1024 * 1024;

/// What a record adds to its plaintext, at most: the 5-byte header, and
/// for the AEAD suites rustls offers, a 16-byte tag plus TLS 1.3's
/// content-type byte or TLS 1.2's 8-byte explicit nonce.
const RECORD_OVERHEAD: usize = 5 + 16 + 8;

/// The most plaintext per record.
const MAX_FRAGMENT: usize = 16 * 1024;

/// One side's rustls connection.
enum Session {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

/// Both sides' connections, so that one [`pump`] drives either.
trait Records {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Records for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
}

impl Records for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
}

/// Encrypted bytes waiting for the socket: `buf[start..end]`. The buffer
/// keeps its length (and so its zeroed memory) between batches.
#[derive(Default)]
struct Outgoing {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Outgoing {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consumed(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// At least `min` bytes of room after what is pending.
    fn room(&mut self, min: usize) -> &mut [u8] {
        if self.start > 0 && self.buf.len() - self.end < min {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < min {
            self.buf.resize(self.end + min, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Writes with `write` into the room, growing it when `write` says how
    /// much it needs.
    fn fill(
        &mut self,
        estimate: usize,
        mut write: impl FnMut(&mut [u8]) -> Result<usize, Grow>,
    ) -> io::Result<()> {
        let mut want = estimate;
        loop {
            match write(self.room(want)) {
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(Grow::To(need)) if need > want => want = need,
                Err(Grow::To(_)) => {
                    return Err(io::Error::other(
                        "TLS record buffer sizing did not converge",
                    ));
                }
                Err(Grow::Failed(error)) => return Err(error),
            }
        }
    }
}

/// Why a write into [`Outgoing`] did not happen.
enum Grow {
    To(usize),
    Failed(io::Error),
}

impl From<EncodeError> for Grow {
    fn from(error: EncodeError) -> Grow {
        match error {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Grow::To(required_size)
            }
            other => Grow::Failed(io::Error::other(other)),
        }
    }
}

impl From<EncryptError> for Grow {
    fn from(error: EncryptError) -> Grow {
        match error {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Grow::To(required_size)
            }
            other => Grow::Failed(io::Error::other(other)),
        }
    }
}

/// Where [`pump`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Application data may flow; nothing more to decrypt.
    Traffic,
    /// The handshake needs more bytes from the peer.
    Blocked,
    /// Both sides sent close_notify.
    Closed,
}

/// What one [`pump`] did.
struct Pumped {
    /// Plaintext bytes appended.
    plain: usize,
    /// Bytes of `data` encrypted.
    taken: usize,
    /// The peer sent close_notify.
    peer_closed: bool,
    step: Result<Step, io::Error>,
}

/// Runs the session over what `incoming` holds: decrypts its records into
/// `plain`, queues any TLS output (handshake, alerts, key updates) in
/// `out`, and once application data may flow, encrypts `data` (up to
/// [`WRITE_BATCH`]) into `out`. Processed bytes leave `incoming`.
fn pump<C: Records>(
    conn: &mut C,
    incoming: &mut BytesMut,
    plain: &mut BytesMut,
    out: &mut Outgoing,
    data: &[u8],
) -> Pumped {
    let mut pumped = Pumped {
        plain: 0,
        taken: 0,
        peer_closed: false,
        step: Ok(Step::Blocked),
    };
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process(&mut incoming[..]);
        let done = match state {
            Err(error) => Some(Err(io::Error::new(io::ErrorKind::InvalidData, error))),
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                let mut failed = None;
                while let Some(record) = traffic.next_record() {
                    match record {
                        Ok(record) => {
                            discard += record.discard;
                            plain.extend_from_slice(record.payload);
                            pumped.plain += record.payload.len();
                        }
                        Err(error) => {
                            failed = Some(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
                            break;
                        }
                    }
                }
                failed
            }
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                match out.fill(1024, |room| Ok(encode.encode(room)?)) {
                    Ok(()) => None,
                    Err(error) => Some(Err(error)),
                }
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                // What was encoded goes out with the rest of `out`, in order.
                transmit.done();
                None
            }
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                let data = &data[..data.len().min(WRITE_BATCH)];
                if data.is_empty() {
                    Some(Ok(Step::Traffic))
                } else {
                    let records = data.len().div_ceil(MAX_FRAGMENT);
                    let estimate = data.len() + records * RECORD_OVERHEAD + 1024;
                    match out.fill(estimate, |room| Ok(traffic.encrypt(data, room)?)) {
                        Ok(()) => {
                            pumped.taken = data.len();
                            Some(Ok(Step::Traffic))
                        }
                        Err(error) => Some(Err(error)),
                    }
                }
            }
            Ok(ConnectionState::BlockedHandshake) => Some(Ok(Step::Blocked)),
            Ok(ConnectionState::PeerClosed) => {
                pumped.peer_closed = true;
                None
            }
            Ok(ConnectionState::Closed) => Some(Ok(Step::Closed)),
            Ok(ConnectionState::ReadEarlyData(_)) | Ok(_) => Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected TLS state (early data is not accepted)",
            ))),
        };
        incoming.advance(discard);
        if let Some(step) = done {
            pumped.step = step;
            return pumped;
        }
    }
}

/// A TLS session over a plain [`Transport`] (see the module docs).
pub(crate) struct TlsStream {
    socket: Transport,
    session: Session,
    /// TLS bytes read and not yet processed (a partial record).
    incoming: BytesMut,
    /// Plaintext decrypted where no read buffer was at hand (while
    /// writing, or for [`TlsStream::poll_read`]): handed out first.
    plain: BytesMut,
    out: Outgoing,
    /// The peer sent close_notify.
    peer_closed: bool,
    /// We sent close_notify: no more writes.
    shut: bool,
    /// The session failed: its alert is written, then this is given out
    /// by every call.
    failed: Option<(io::ErrorKind, String)>,
    /// The failure's first report keeps the source error (rustls's error,
    /// for [`super::config::handshake_error`]).
    first_error: Option<io::Error>,
}

impl TlsStream {
    fn new(socket: Transport, session: Session) -> TlsStream {
        TlsStream {
            socket,
            session,
            incoming: BytesMut::new(),
            plain: BytesMut::new(),
            out: Outgoing::default(),
            peer_closed: false,
            shut: false,
            failed: None,
            first_error: None,
        }
    }

    /// A client session over `socket`, before its handshake.
    pub(crate) fn client(socket: Transport, conn: UnbufferedClientConnection) -> TlsStream {
        TlsStream::new(socket, Session::Client(conn))
    }

    /// A server session over `socket`, before its handshake.
    pub(crate) fn server(socket: Transport, conn: UnbufferedServerConnection) -> TlsStream {
        TlsStream::new(socket, Session::Server(conn))
    }

    /// The session's facts (peer certificates, version).
    pub(crate) fn common(&self) -> &CommonState {
        match &self.session {
            Session::Client(conn) => conn,
            Session::Server(conn) => conn,
        }
    }

    fn pump_into(&mut self, into_plain: Option<&mut BytesMut>, data: &[u8]) -> Pumped {
        let plain = match into_plain {
            Some(plain) => plain,
            None => &mut self.plain,
        };
        let pumped = match &mut self.session {
            Session::Client(conn) => pump(conn, &mut self.incoming, plain, &mut self.out, data),
            Session::Server(conn) => pump(conn, &mut self.incoming, plain, &mut self.out, data),
        };
        if pumped.peer_closed {
            self.peer_closed = true;
        }
        pumped
    }

    /// Records a failure: queues its alert (rustls hands it out after the
    /// error) and keeps the error to give out.
    fn fail(&mut self, error: io::Error) {
        if self.failed.is_some() {
            return;
        }
        self.failed = Some((error.kind(), error.to_string()));
        self.first_error = Some(error);
        // The alert: rustls queued it with the error, and hands it out
        // before it would look at any record again (it must not: a broken
        // record would be judged twice, or a handshake message taken from
        // a buffer that moved).
        for _ in 0..4 {
            if !self.common().wants_write() {
                break;
            }
            let mut scratch = BytesMut::new();
            let encoded = match &mut self.session {
                Session::Client(conn) => {
                    encode_queued(conn, &mut self.incoming, &mut scratch, &mut self.out)
                }
                Session::Server(conn) => {
                    encode_queued(conn, &mut self.incoming, &mut scratch, &mut self.out)
                }
            };
            if !encoded {
                break;
            }
        }
    }

    /// Writes the failure's alert (as far as the socket takes it), then
    /// gives out the error.
    fn poll_failed<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.out.is_empty() {
            match self.poll_send(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => self.out = Outgoing::default(),
            }
        }
        if let Some(error) = self.first_error.take() {
            return Poll::Ready(Err(error));
        }
        let (kind, message) = self.failed.clone().expect("the session failed");
        Poll::Ready(Err(io::Error::new(kind, message)))
    }

    /// Writes `out` until it is empty or the socket takes no more.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.socket).poll_write(cx, self.out.pending()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.consumed(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Runs the handshake to its end: `Ok` once application data may flow
    /// both ways.
    pub(crate) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.failed.is_some() {
                return self.poll_failed(cx);
            }
            let pumped = self.pump_into(None, &[]);
            let step = match pumped.step {
                Ok(step) => step,
                Err(error) => {
                    self.fail(error);
                    continue;
                }
            };
            ready!(self.poll_send(cx))?;
            match step {
                Step::Traffic if !self.common().is_handshaking() => {
                    return Poll::Ready(Ok(()));
                }
                Step::Closed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the TLS handshake",
                    )));
                }
                Step::Traffic | Step::Blocked => {
                    if self.peer_closed {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the peer closed during the TLS handshake",
                        )));
                    }
                    let n = ready!(self.socket.poll_read_into(cx, &mut self.incoming))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the peer closed during the TLS handshake",
                        )));
                    }
                }
            }
        }
    }

    /// Decrypts what arrives into `buf` (see [`Transport::poll_read_into`]):
    /// `Ready(Ok(0))` once the peer sent close_notify and everything
    /// before it was handed out; an error when the stream ends without it.
    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if !self.plain.is_empty() {
            let n = self.plain.len();
            buf.extend_from_slice(&self.plain);
            self.plain.clear();
            return Poll::Ready(Ok(n));
        }
        loop {
            if self.failed.is_some() {
                return self.poll_failed(cx);
            }
            let pumped = self.pump_into(Some(buf), &[]);
            if let Err(error) = pumped.step {
                self.fail(error);
                if pumped.plain > 0 {
                    // What came before the failure first.
                    return Poll::Ready(Ok(pumped.plain));
                }
                continue;
            }
            if !self.out.is_empty() {
                // A key update's answer, say: out with it when the socket
                // takes it; the driver flushes the rest (`unflushed`).
                if let Poll::Ready(Err(error)) = self.poll_send(cx) {
                    return Poll::Ready(Err(error));
                }
            }
            if pumped.plain > 0 {
                return Poll::Ready(Ok(pumped.plain));
            }
            if self.peer_closed || pumped.step.as_ref().is_ok_and(|s| *s == Step::Closed) {
                return Poll::Ready(Ok(0));
            }
            let n = ready!(self.socket.poll_read_into(cx, &mut self.incoming))?;
            if n == 0 {
                let what = if self.incoming.is_empty() {
                    "the peer closed the TLS stream without close_notify"
                } else {
                    "the TLS stream ended inside a record"
                };
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, what)));
            }
        }
    }

    /// Reads plaintext for `AsyncRead` (the HELLO exchange reads so).
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.plain.is_empty() {
            let mut plain = std::mem::take(&mut self.plain);
            let read = self.poll_read_into(cx, &mut plain);
            self.plain = plain;
            ready!(read)?;
        }
        let n = buf.remaining().min(self.plain.len());
        buf.put_slice(&self.plain[..n]);
        self.plain.advance(n);
        Poll::Ready(Ok(()))
    }

    /// Takes up to [`WRITE_BATCH`] bytes of `data`, encrypted, once what
    /// was taken before is out.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.failed.is_some() {
            return self.poll_failed(cx);
        }
        if self.shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS session is shut down",
            )));
        }
        ready!(self.poll_send(cx))?;
        let had_plain = !self.plain.is_empty();
        let pumped = self.pump_into(None, data);
        if let Err(error) = pumped.step {
            self.fail(error);
            return self.poll_failed(cx);
        }
        if !had_plain && !self.plain.is_empty() {
            // Records decrypted while writing: the reader must come for
            // them, though the socket may have nothing more to say.
            cx.waker().wake_by_ref();
        }
        if pumped.taken == 0 && !data.is_empty() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS session no longer takes application data",
            )));
        }
        // Start it on its way; what the socket does not take now is
        // flushed by the driver.
        if let Poll::Ready(Err(error)) = self.poll_send(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(pumped.taken))
    }

    /// Writes everything taken.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed.is_some() {
            return self.poll_failed(cx);
        }
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    /// True while encrypted bytes wait for the socket.
    pub(crate) fn unflushed(&self) -> bool {
        !self.out.is_empty()
    }

    /// True when nothing decrypted waits: the driver may drop its read
    /// buffer and wait for the socket.
    pub(crate) fn reads_by_readiness(&self) -> bool {
        self.plain.is_empty() && self.socket.reads_by_readiness()
    }

    /// The connection went quiet: give back the buffers that hold nothing.
    pub(crate) fn quiet(&mut self) {
        self.socket.quiet();
        if self.incoming.is_empty() {
            self.incoming = BytesMut::new();
        }
        if self.plain.is_empty() {
            self.plain = BytesMut::new();
        }
        if self.out.is_empty() {
            self.out = Outgoing::default();
        }
    }

    /// Bytes of buffer memory held (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.incoming.capacity() + self.plain.capacity() + self.out.buf.capacity()
    }

    /// Sends close_notify (as far as the socket takes it) and shuts the
    /// socket down.
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut && self.failed.is_none() && !self.common().is_handshaking() {
            ready!(self.poll_send(cx))?;
            match &mut self.session {
                Session::Client(conn) => close_notify(conn, &mut self.incoming, &mut self.out)?,
                Session::Server(conn) => close_notify(conn, &mut self.incoming, &mut self.out)?,
            }
            self.shut = true;
        }
        if self.failed.is_none() {
            ready!(self.poll_send(cx))?;
        }
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// Encodes the next queued TLS message into `out`, when rustls hands one
/// out; false otherwise. Called only while rustls has one queued, so that
/// it returns before reading any record.
fn encode_queued<C: Records>(
    conn: &mut C,
    incoming: &mut BytesMut,
    plain: &mut BytesMut,
    out: &mut Outgoing,
) -> bool {
    let UnbufferedStatus { discard, state } = conn.process(&mut incoming[..]);
    let encoded = match state {
        Ok(ConnectionState::EncodeTlsData(mut encode)) => {
            out.fill(1024, |room| Ok(encode.encode(room)?)).is_ok()
        }
        Ok(ConnectionState::ReadTraffic(mut traffic)) => {
            while let Some(Ok(record)) = traffic.next_record() {
                plain.extend_from_slice(record.payload);
            }
            true
        }
        _ => false,
    };
    incoming.advance(discard);
    encoded
}

/// Queues close_notify in `out`, once application data may flow.
fn close_notify<C: Records>(
    conn: &mut C,
    incoming: &mut BytesMut,
    out: &mut Outgoing,
) -> io::Result<()> {
    let UnbufferedStatus { state, .. } = conn.process(&mut incoming[..]);
    if let Ok(ConnectionState::WriteTraffic(mut traffic)) = state {
        out.fill(64, |room| Ok(traffic.queue_close_notify(room)?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, ServerConfig};
    use tokio::io::{AsyncRead, DuplexStream};

    use super::*;

    /// Counts of a socket's syscalls.
    #[derive(Default)]
    struct Counts {
        reads: AtomicUsize,
        writes: AtomicUsize,
    }

    /// One end of an in-memory pipe that writes a vectored write whole, as
    /// a socket's `writev` does, and counts reads and writes.
    struct Socket {
        pipe: DuplexStream,
        counts: Arc<Counts>,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let read = Pin::new(&mut this.pipe).poll_read(cx, buf);
            if read.is_ready() {
                this.counts.reads.fetch_add(1, Ordering::Relaxed);
            }
            read
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let write = Pin::new(&mut this.pipe).poll_write(cx, data);
            if let Poll::Ready(Ok(n)) = write {
                assert_eq!(n, data.len(), "the pipe took a write in part");
                this.counts.writes.fetch_add(1, Ordering::Relaxed);
            }
            write
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().pipe).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().pipe).poll_shutdown(cx)
        }
    }

    /// A client and a server session after a TLS 1.3 handshake over a
    /// pipe larger than anything a test writes, and the counts of the
    /// server's socket.
    async fn pair() -> (TlsStream, TlsStream, Arc<Counts>) {
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
        let counts = Arc::new(Counts::default());
        let client_socket = Socket {
            pipe: a,
            counts: Arc::new(Counts::default()),
        };
        let server_socket = Socket {
            pipe: b,
            counts: counts.clone(),
        };
        let name = ServerName::try_from("server.test").unwrap();
        let mut client = TlsStream::client(
            Transport::other(Box::new(client_socket)),
            UnbufferedClientConnection::new(Arc::new(client), name).unwrap(),
        );
        let mut server = TlsStream::server(
            Transport::other(Box::new(server_socket)),
            UnbufferedServerConnection::new(Arc::new(server)).unwrap(),
        );
        let (a, b) = tokio::join!(
            std::future::poll_fn(|cx| client.poll_handshake(cx)),
            std::future::poll_fn(|cx| server.poll_handshake(cx)),
        );
        a.unwrap();
        b.unwrap();
        counts.reads.store(0, Ordering::Relaxed);
        counts.writes.store(0, Ordering::Relaxed);
        (client, server, counts)
    }

    /// Reads `len` bytes of plaintext from `session` into one buffer.
    async fn read_all(session: &mut TlsStream, len: usize) -> BytesMut {
        let mut buf = BytesMut::new();
        while buf.len() < len {
            let n = std::future::poll_fn(|cx| session.poll_read_into(cx, &mut buf))
                .await
                .unwrap();
            assert!(n > 0, "the stream ended after {} bytes", buf.len());
        }
        buf
    }

    /// Writes all of `data` and flushes it.
    async fn write_all(session: &mut TlsStream, mut data: &[u8]) {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| session.poll_write(cx, data))
                .await
                .unwrap();
            data = &data[n..];
        }
        std::future::poll_fn(|cx| session.poll_flush(cx))
            .await
            .unwrap();
    }

    /// A 4 MiB message is encrypted `WRITE_BATCH` (1 MiB) at a time and
    /// each batch of records goes to the socket in one write: 4 writes,
    /// not one per 64 KiB (64) or per record (256).
    #[tokio::test]
    async fn a_large_write_goes_to_the_socket_in_one_write_per_batch() {
        let (client, mut server, counts) = pair().await;
        let message: Vec<u8> = (0..4 << 20).map(|i: u32| i as u8).collect();
        write_all(&mut server, &message).await;
        assert_eq!(
            counts.writes.load(Ordering::Relaxed),
            message.len() / WRITE_BATCH
        );
        drop(client);
    }

    /// A 1 MiB message arrives in reads of up to 64 KiB, each decrypted
    /// where it lies: at most one read per 16 KiB record (rustls's
    /// buffered API reads 4 KiB at a time, over 256 reads), and every
    /// byte as sent.
    #[tokio::test]
    async fn a_large_message_is_read_in_large_reads() {
        let (mut client, mut server, counts) = pair().await;
        let message: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7) as u8).collect();
        write_all(&mut client, &message).await;
        let got = read_all(&mut server, message.len()).await;
        assert_eq!(&got[..], &message[..]);
        let reads = counts.reads.load(Ordering::Relaxed);
        assert!(
            reads <= message.len() / MAX_FRAGMENT,
            "{reads} reads for 1 MiB of records"
        );
    }

    /// Small messages both ways, interleaved, arrive whole and in order.
    #[tokio::test]
    async fn small_messages_cross_both_ways_in_order() {
        let (mut client, mut server, _) = pair().await;
        for i in 0..100u32 {
            let call = i.to_be_bytes().repeat(1 + i as usize % 9);
            write_all(&mut client, &call).await;
            assert_eq!(&read_all(&mut server, call.len()).await[..], &call[..]);
            let reply = [&call[..], b"!"].concat();
            write_all(&mut server, &reply).await;
            assert_eq!(&read_all(&mut client, reply.len()).await[..], &reply[..]);
        }
    }

    /// close_notify ends the stream cleanly (`Ok(0)`), after the data
    /// before it; a stream that just stops is an error.
    #[tokio::test]
    async fn close_notify_ends_the_stream_and_a_bare_end_is_an_error() {
        let (mut client, mut server, _) = pair().await;
        write_all(&mut client, b"last words").await;
        std::future::poll_fn(|cx| client.poll_shutdown(cx))
            .await
            .unwrap();
        assert_eq!(&read_all(&mut server, 10).await[..], b"last words");
        let mut buf = BytesMut::new();
        let n = std::future::poll_fn(|cx| server.poll_read_into(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(n, 0);

        let (client, mut server, _) = pair().await;
        drop(client);
        let error = std::future::poll_fn(|cx| server.poll_read_into(cx, &mut buf))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
    }

    /// Once the traffic is over and the connection quiet, a session gives
    /// back its buffers.
    #[tokio::test]
    async fn a_quiet_session_holds_no_buffers() {
        let (mut client, mut server, _) = pair().await;
        let message = vec![1u8; 200_000];
        write_all(&mut client, &message).await;
        read_all(&mut server, message.len()).await;
        assert!(client.held() > 0 && server.held() > 0);
        client.quiet();
        server.quiet();
        assert_eq!((client.held(), server.held()), (0, 0));
    }

    /// Garbage where a record should be fails the session with an error,
    /// and every later call gives an error too.
    #[tokio::test]
    async fn garbage_fails_the_session_for_good() {
        let (mut client, mut server, _) = pair().await;
        server
            .incoming
            .extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x20]);
        server.incoming.extend_from_slice(&[0xab; 0x20]);
        let mut buf = BytesMut::new();
        let first = std::future::poll_fn(|cx| server.poll_read_into(cx, &mut buf)).await;
        assert_eq!(first.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let again = std::future::poll_fn(|cx| server.poll_read_into(cx, &mut buf)).await;
        assert!(again.is_err());
        let write = std::future::poll_fn(|cx| server.poll_write(cx, b"x")).await;
        assert!(write.is_err());
        // The server told the client why: an alert.
        let error = std::future::poll_fn(|cx| client.poll_read_into(cx, &mut buf))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("alert"), "{error}");
    }
}
