//! The TLS settings of both sides, the rustls configurations built from
//! them, and the mapping of rustls's certificate errors to [`CertError`].

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::identity::facts;
use super::{CertError, TlsError, TlsIdentity, check_server_certificate};

/// How a connection starts TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// TLS from the first byte, as GlusterFS does.
    #[default]
    Direct,
    /// RPC-with-TLS (RFC 9289): a NULL call with the `AUTH_TLS` credential
    /// in plain text, answered `STARTTLS`, then TLS on the same connection.
    StartTls,
}

/// A server's TLS: its identity and how connections start TLS. A client
/// certificate is always required, and judged by the rules in
/// [`crate::tls`].
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Our certificate, key and the roots that sign our clients.
    pub identity: TlsIdentity,
    /// Direct (default) or STARTTLS.
    pub mode: TlsMode,
}

impl ServerTls {
    /// Direct TLS with `identity`.
    pub fn new(identity: TlsIdentity) -> ServerTls {
        ServerTls {
            identity,
            mode: TlsMode::Direct,
        }
    }
}

/// What a client requires of the server's certificate, beyond a chain to
/// the roots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServerCheck {
    /// An IP SAN equal to the IP we dialled (the default).
    #[default]
    DialledIp,
    /// This subject CN, whatever the SANs (glusterd's certificates usually
    /// carry only a CN).
    Cn(String),
}

/// A client's TLS: its identity, the mode, and what the server's
/// certificate must name. The handshake (and the STARTTLS probe) must
/// finish within [`crate::ConnectOptions::connect_timeout`].
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Our certificate, key and the roots that sign our servers.
    pub identity: TlsIdentity,
    /// Direct (default) or STARTTLS.
    pub mode: TlsMode,
    /// The rule for the server's certificate.
    pub server: ServerCheck,
}

impl ClientTls {
    /// Direct TLS with `identity`; the server's certificate must name the
    /// dialled IP.
    pub fn new(identity: TlsIdentity) -> ClientTls {
        ClientTls {
            identity,
            mode: TlsMode::Direct,
            server: ServerCheck::DialledIp,
        }
    }
}

/// rustls on ring, and nothing else.
pub(crate) fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The server's rustls configuration: our chain, and a client certificate
/// required, chained to our roots.
pub(crate) fn server_config(tls: &ServerTls) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(tls.identity.roots(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.identity.chain(), tls.identity.key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The client's rustls configuration: our chain as the client
/// certificate, and [`PeerVerifier`] for the server's.
pub(crate) fn client_config(tls: &ClientTls) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(provider());
    let verifier = Arc::new(PeerVerifier {
        roots: tls.identity.roots(),
        check: tls.server.clone(),
        algorithms: provider.signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(tls.identity.chain(), tls.identity.key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The client's check of the server's certificate: rustls's webpki
/// helpers verify the chain and the handshake signatures; the name rule
/// (the dialled IP, or the configured CN) is ours
/// ([`check_server_certificate`]), so its failure is our [`CertError`].
#[derive(Debug)]
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    check: ServerCheck,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let peer = facts(end_entity, "").map_err(|e| ours(CertError::Other(e)))?;
        // We always connect by IP, so the name is the dialled address.
        let dialled = match server_name {
            ServerName::IpAddress(ip) => IpAddr::from(*ip),
            other => {
                return Err(ours(CertError::Other(format!(
                    "dialled a name ({other:?}), not an IP address"
                ))));
            }
        };
        let expected_cn = match &self.check {
            ServerCheck::DialledIp => None,
            ServerCheck::Cn(cn) => Some(cn.as_str()),
        };
        check_server_certificate(&peer, dialled, expected_cn).map_err(ours)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Our rule's error, carried through rustls.
fn ours(error: CertError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(error))))
}

/// The certificate error inside a rustls error, when it is one.
pub(crate) fn cert_error(error: &rustls::Error) -> Option<CertError> {
    Some(match error {
        rustls::Error::NoCertificatesPresented => CertError::NoClientCertificate,
        rustls::Error::InvalidCertificate(error) => match error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertError::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertError::NotYetValid
            }
            CertificateError::UnknownIssuer => CertError::UnknownIssuer,
            CertificateError::Other(other) => match other.0.downcast_ref::<CertError>() {
                Some(ours) => ours.clone(),
                None => CertError::Other(other.to_string()),
            },
            other => CertError::Other(other.to_string()),
        },
        _ => return None,
    })
}

/// A handshake's I/O error as a [`TlsError`]: a certificate error when
/// rustls refused a certificate, else the handshake's text.
pub(crate) fn handshake_error(error: &std::io::Error) -> TlsError {
    let inner = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls) => match cert_error(rustls) {
            Some(cert) => TlsError::Certificate(cert),
            None => TlsError::Handshake(rustls.to_string()),
        },
        None => TlsError::Handshake(error.to_string()),
    }
}

/// The version's name, as [`super::TlsPeer::version`] shows it.
pub(crate) fn version_name(version: Option<rustls::ProtocolVersion>) -> String {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
        Some(other) => format!("{other:?}"),
        None => "unknown".into(),
    }
}
