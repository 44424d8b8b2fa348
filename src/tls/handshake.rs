//! The TLS handshakes of both sides, over a connection's byte stream, and
//! the facts of the peer's certificate. What comes before the handshake
//! (the RFC 9289 probe in STARTTLS mode) is the drivers'.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::certificate::facts;
use super::config::{ClientShared, ServerShared, tls_version};
use super::revocation::Presented;
use super::rustls_error::{Failed, classify, handshake_error};
use super::{CertError, HandshakeFailure, TlsError, TlsPeer, check_address};
use crate::stream::Transport;

/// Why a server turned a connection away during the TLS handshake.
#[derive(Debug)]
pub(crate) enum Refused {
    /// A certificate rule failed; the certificate's facts when it got that
    /// far.
    Certificate(CertError, Option<TlsPeer>),
    /// The handshake failed otherwise.
    Handshake(HandshakeFailure),
}

/// The server's side: the handshake, in which the connection's verifier
/// applies the address rule against `observed`, so that a refused
/// certificate fails the handshake with an alert the client sees. Returns
/// the stream, the client certificate's facts, and its chain as presented
/// (to judge again when the CRLs change).
pub(crate) async fn accept(
    transport: Transport,
    shared: &ServerShared,
    observed: IpAddr,
) -> Result<(Transport, Arc<TlsPeer>, Option<Presented>), Refused> {
    let (config, judged) = shared.for_connection(observed).map_err(|error| {
        Refused::Handshake(HandshakeFailure::Local {
            detail: error.to_string(),
        })
    })?;
    let mut tls = match TlsAcceptor::from(config).accept(transport).await {
        Ok(tls) => tls,
        Err(error) => {
            if let Some((rule, peer)) = judged.refused() {
                return Err(Refused::Certificate(rule, Some(peer)));
            }
            return Err(match classify(&error) {
                Failed::Certificate(cert) => Refused::Certificate(cert, None),
                Failed::Alert(alert) => Refused::Handshake(HandshakeFailure::Alert { alert }),
                Failed::Handshake(failure) => Refused::Handshake(failure),
            });
        }
    };
    let (peer, chain) = match peer_of(tls.get_ref().1) {
        Some((Ok(peer), chain)) => (peer, chain),
        Some((Err(error), _)) => return Err(Refused::Certificate(error, None)),
        None => return Err(Refused::Certificate(CertError::NoClientCertificate, None)),
    };
    // The verifier has checked the address; this is for a session that
    // skipped it (none should: resumption is off).
    if let Err(error) = check_address(&peer, observed) {
        return Err(Refused::Certificate(error, Some(peer)));
    }
    let presented = shared.presented(chain);
    super::stream::batch_writes(tls.get_mut().1);
    Ok((Transport::other(Box::new(tls)), Arc::new(peer), presented))
}

/// The client's side, on a fresh connection to `remote` (the address we
/// dialled): the handshake, in which [`super::config`]'s verifier applies
/// the server rule. Returns the stream over TLS, the server's certificate
/// facts, and its chain as presented (to judge again when the CRLs
/// change).
pub(crate) async fn connect(
    transport: Transport,
    remote: IpAddr,
    shared: &ClientShared,
) -> Result<(Transport, Arc<TlsPeer>, Option<Presented>), TlsError> {
    let config = shared.config.clone();
    let name = ServerName::IpAddress(remote.into());
    let mut stream = TlsConnector::from(config)
        .connect(name, transport)
        .await
        .map_err(|error| handshake_error(&error))?;
    let (peer, chain) = peer_of(stream.get_ref().1)
        .ok_or(TlsError::Handshake(HandshakeFailure::NoServerCertificate))?;
    let peer = peer.map_err(TlsError::Certificate)?;
    let presented = shared.presented(chain);
    super::stream::batch_writes(stream.get_mut().1);
    let stream = super::stream::ClientStream::new(stream);
    Ok((
        Transport::other(Box::new(stream)),
        Arc::new(peer),
        presented,
    ))
}

/// What a finished handshake says about the peer: its end-entity
/// certificate's facts (with the session's version) and its chain as
/// presented; `None` when it sent no certificate. Each side says what that
/// means for it.
fn peer_of(
    session: &rustls::CommonState,
) -> Option<(Result<TlsPeer, CertError>, &[CertificateDer<'static>])> {
    let chain = session.peer_certificates()?;
    let version = tls_version(session.protocol_version());
    Some((facts(chain.first()?, version), chain))
}
