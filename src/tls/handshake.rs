//! The TLS handshakes of both sides, over an accepted or connected stream:
//! the STARTTLS probe when the mode asks for it, then rustls, then the
//! facts of the peer's certificate.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::ClientConfig;
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::certificate::facts;
use super::config::{ClientShared, ServerShared, handshake_error, version_name};
use super::revocation::Presented;
use super::stream::TlsStream;
use super::{CertError, ClientTls, TlsError, TlsMode, TlsPeer, check_address};
use crate::conn::starttls::{self, NotAProbe, ProbeStep};
use crate::proto::{RecordDecoder, RecordLimits};
use crate::stream::Transport;

/// Why a server turned a connection away during TLS.
#[derive(Debug)]
pub(crate) enum Refused {
    /// TLS is required and the peer spoke plain RPC (or, to a STARTTLS
    /// server, anything but the probe).
    PlainText(NotAProbe),
    /// A certificate rule failed; the certificate's facts when it got that
    /// far.
    Certificate(CertError, Option<TlsPeer>),
    /// The handshake failed otherwise.
    Handshake(String),
    /// The peer closed before the handshake finished.
    Closed,
}

/// The server's side: the probe (STARTTLS), then the handshake, in which
/// the connection's verifier applies the address rule against `observed`,
/// so that a refused certificate fails the handshake with an alert the
/// client sees. Returns the stream, the client certificate's facts, and
/// its chain as presented (to judge again when the CRLs change).
pub(crate) async fn accept(
    mut stream: TcpStream,
    shared: &ServerShared,
    observed: IpAddr,
) -> Result<(Transport, Arc<TlsPeer>, Option<Presented>), Refused> {
    let mode = shared.mode();
    let (config, judged) = shared
        .for_connection(observed)
        .map_err(|error| Refused::Handshake(error.to_string()))?;
    let io_failed = |error: std::io::Error| Refused::Handshake(error.to_string());
    match mode {
        TlsMode::Direct => {
            // A TLS connection opens with a handshake record (0x16); plain
            // record marking never does for a sane record (that would be a
            // non-last fragment of 369 MiB).
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await.map_err(io_failed)? == 0 {
                return Err(Refused::Closed);
            }
            if first[0] != 0x16 {
                let mut head = [0u8; 64];
                let n = stream.peek(&mut head).await.map_err(io_failed)?;
                let reason = match starttls::judge_first_record(&head[..n]) {
                    ProbeStep::Refuse(reason) => reason,
                    // A probe (or the start of a call): plain RPC either way.
                    _ => NotAProbe::PlainCall {
                        program: 0,
                        procedure: 0,
                        flavor: 0,
                    },
                };
                return Err(Refused::PlainText(reason));
            }
        }
        TlsMode::StartTls => {
            let mut buf = Vec::with_capacity(64);
            loop {
                match starttls::judge_first_record(&buf) {
                    ProbeStep::Need(total) => {
                        // Read no further than the probe: the ClientHello
                        // after it is rustls's to read.
                        let start = buf.len();
                        buf.resize(total, 0);
                        let n = stream.read(&mut buf[start..]).await.map_err(io_failed)?;
                        if n == 0 {
                            return Err(Refused::Closed);
                        }
                        buf.truncate(start + n);
                    }
                    ProbeStep::Upgrade { reply, .. } => {
                        stream.write_all(&reply).await.map_err(io_failed)?;
                        break;
                    }
                    ProbeStep::Refuse(reason) => return Err(Refused::PlainText(reason)),
                }
            }
        }
    }
    let session = UnbufferedServerConnection::new(config)
        .map_err(|error| Refused::Handshake(error.to_string()))?;
    let mut tls = TlsStream::server(Transport::tcp(stream), session);
    if let Err(error) = std::future::poll_fn(|cx| tls.poll_handshake(cx)).await {
        if let Some((rule, peer)) = judged.refused() {
            return Err(Refused::Certificate(rule, Some(peer)));
        }
        return Err(match handshake_error(&error) {
            TlsError::Certificate(cert) => Refused::Certificate(cert, None),
            other => Refused::Handshake(other.to_string()),
        });
    }
    let session = tls.common();
    let version = version_name(session.protocol_version());
    let peer = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| facts(der, &version));
    let peer = match peer {
        Some(Ok(peer)) => peer,
        Some(Err(error)) => return Err(Refused::Certificate(CertError::Other(error), None)),
        None => return Err(Refused::Certificate(CertError::NoClientCertificate, None)),
    };
    // The verifier has checked the address; this is for a session that
    // skipped it (none should: resumption is off).
    if let Err(error) = check_address(&peer, observed) {
        return Err(Refused::Certificate(error, Some(peer)));
    }
    let presented = session
        .peer_certificates()
        .and_then(|chain| shared.presented(chain));
    Ok((Transport::tls(tls), Arc::new(peer), presented))
}

/// The client's side, on a fresh connection to `remote` (the address we
/// dialled): the probe (STARTTLS, a NULL call of `probe`'s program and
/// version), then the handshake, in which [`super::config`]'s verifier
/// applies the server rule. Returns the stream over TLS, the server's
/// certificate facts, and its chain as presented (to judge again when the
/// CRLs change).
pub(crate) async fn connect(
    transport: Transport,
    remote: IpAddr,
    shared: &ClientShared,
    probe: (u32, u32),
) -> Result<(Transport, Arc<TlsPeer>, Option<Presented>), TlsError> {
    let (tls, config): (&ClientTls, Arc<ClientConfig>) = (&shared.tls, shared.config.clone());
    let mut io = transport;
    let failed = |error: std::io::Error| TlsError::Handshake(error.to_string());
    if tls.mode == TlsMode::StartTls {
        let xid: u32 = rand::random();
        let (program, version) = probe;
        io.write_all(&starttls::probe(xid, program, version))
            .await
            .map_err(failed)?;
        let max = starttls::MAX_PROBE_RECORD;
        let limits = RecordLimits::new(max as u32, max, 1).expect("valid limits");
        let mut records = RecordDecoder::new(limits);
        let mut buf = BytesMut::new();
        let record = loop {
            if starttls::looks_like_tls(&buf) {
                return Err(TlsError::StartTlsRefused);
            }
            match records.decode(&mut buf) {
                Ok(Some(record)) => break record,
                Ok(None) => {}
                Err(_) => return Err(TlsError::StartTlsRefused),
            }
            match io.read_buf(&mut buf).await {
                Ok(0) => return Err(TlsError::StartTlsRefused),
                Ok(_) => {}
                Err(error) => return Err(failed(error)),
            }
        };
        if !buf.is_empty() || !starttls::answers_starttls(record, xid) {
            return Err(TlsError::StartTlsRefused);
        }
    }
    let name = ServerName::IpAddress(remote.into());
    let session = UnbufferedClientConnection::new(config, name)
        .map_err(|error| TlsError::Handshake(error.to_string()))?;
    let mut stream = TlsStream::client(io, session);
    std::future::poll_fn(|cx| stream.poll_handshake(cx))
        .await
        .map_err(|error| handshake_error(&error))?;
    let session = stream.common();
    let version = version_name(session.protocol_version());
    let peer = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| TlsError::Handshake("the server sent no certificate".into()))
        .and_then(|der| {
            facts(der, &version).map_err(|e| TlsError::Certificate(CertError::Other(e)))
        })?;
    let presented = session
        .peer_certificates()
        .and_then(|chain| shared.presented(chain));
    Ok((Transport::tls(stream), Arc::new(peer), presented))
}
