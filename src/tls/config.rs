//! The TLS settings of both sides, the rustls configurations built from
//! them, and the mapping of rustls's certificate errors to [`CertError`].

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ParsedCertificate, ResolvesServerCert,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use super::identity::facts;
use super::{
    CertError, TlsAlert, TlsError, TlsIdentity, TlsPeer, check_address, check_server_certificate,
};

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

/// What every server connection's rustls configuration shares, built
/// once from [`ServerTls`]: the provider, the chain verifier (our roots)
/// and our certified key. A connection's configuration
/// ([`ServerShared::for_connection`]) adds a verifier that knows the
/// address the connection comes from.
#[derive(Debug)]
pub(crate) struct ServerShared {
    provider: Arc<CryptoProvider>,
    chain: Arc<dyn ClientCertVerifier>,
    key: Arc<CertifiedKey>,
}

/// The server's shared TLS parts: a client certificate required, chained
/// to our roots; our chain and key (which must fit).
pub(crate) fn server_config(tls: &ServerTls) -> Result<ServerShared, TlsError> {
    let provider = Arc::new(provider());
    let chain = WebPkiClientVerifier::builder_with_provider(tls.identity.roots(), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let key = CertifiedKey::from_der(tls.identity.chain(), tls.identity.key(), &provider)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let shared = ServerShared {
        provider,
        chain,
        key: Arc::new(key),
    };
    // Build one now, so that a configuration error shows at serve().
    shared.for_connection(IpAddr::from([0, 0, 0, 0]))?;
    Ok(shared)
}

impl ServerShared {
    /// The rustls configuration for a connection from `observed`: the
    /// client certificate must chain to our roots and name `observed` as
    /// an IP SAN ([`check_address`]), or the handshake fails with a fatal
    /// alert the client sees (`access_denied` for the address rule). The
    /// certificate's facts and our verdict go to the returned [`Judged`].
    ///
    /// Cheap (no key or root is parsed again; a few small allocations),
    /// and it runs once per connection, not per call. Session resumption
    /// is off: a resumed session would skip the verifier, and rustls warns
    /// against sharing session storage between configurations whose
    /// verifiers differ, as these do by address.
    pub(crate) fn for_connection(
        &self,
        observed: IpAddr,
    ) -> Result<(Arc<ServerConfig>, Arc<Judged>), TlsError> {
        let judged = Arc::new(Judged::default());
        let verifier = Arc::new(AddressVerifier {
            chain: self.chain.clone(),
            observed,
            judged: judged.clone(),
        });
        let resolver = Arc::new(OurKey {
            key: self.key.clone(),
            judged: judged.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver);
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok((Arc::new(config), judged))
    }
}

/// What a connection's verifier found: the client certificate's facts and
/// the address rule's verdict, for the server's verdict and log when the
/// handshake fails (rustls's error carries only the alert's cause).
#[derive(Debug, Default)]
pub(crate) struct Judged {
    inner: Mutex<JudgedInner>,
}

#[derive(Debug, Default)]
struct JudgedInner {
    /// The client offered a TLS 1.3 cipher suite, so the session is TLS
    /// 1.3 (our configuration prefers it, as rustls does).
    tls13: bool,
    /// The certificate's facts and the address rule's failure.
    refused: Option<(TlsPeer, CertError)>,
}

impl Judged {
    fn lock(&self) -> std::sync::MutexGuard<'_, JudgedInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address rule's failure and the certificate's facts, if the
    /// verifier refused the certificate for it.
    pub(crate) fn refused(&self) -> Option<(CertError, TlsPeer)> {
        let inner = self.lock();
        let (mut peer, error) = inner.refused.clone()?;
        peer.version = if inner.tls13 { "TLSv1.3" } else { "TLSv1.2" }.into();
        Some((error, peer))
    }
}

/// Our certificate for every connection; it notes which version the
/// client's hello leads to, for the verdict of a refused handshake.
#[derive(Debug)]
struct OurKey {
    key: Arc<CertifiedKey>,
    judged: Arc<Judged>,
}

impl ResolvesServerCert for OurKey {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // TLS 1.3 suites are 0x13xx; rustls picks 1.3 when the client
        // offers it, and a client that offers 1.3 offers its suites.
        let tls13 = hello
            .cipher_suites()
            .iter()
            .any(|suite| u16::from(*suite) >> 8 == 0x13);
        self.judged.lock().tls13 = tls13;
        Some(self.key.clone())
    }
}

/// The server's check of a client certificate on one connection: rustls's
/// webpki verifier for the chain, then [`check_address`] against the
/// address the connection comes from. A failure of the address rule is
/// `ApplicationVerificationFailure`, which rustls sends as the fatal alert
/// `access_denied`; the rule's own error and the certificate's facts go to
/// [`Judged`].
#[derive(Debug)]
struct AddressVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    observed: IpAddr,
    judged: Arc<Judged>,
}

impl ClientCertVerifier for AddressVerifier {
    fn offer_client_auth(&self) -> bool {
        self.chain.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.chain.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        let peer = facts(end_entity, "").map_err(|e| ours(CertError::Other(e)))?;
        match check_address(&peer, self.observed) {
            Ok(()) => Ok(verified),
            Err(error) => {
                self.judged.lock().refused = Some((peer, error));
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
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
/// rustls refused a certificate, the peer's refusal when it sent a fatal
/// alert, else the handshake's text.
pub(crate) fn handshake_error(error: &std::io::Error) -> TlsError {
    let inner = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::AlertReceived(alert)) => TlsError::Refused {
            alert: TlsAlert::from_code(u8::from(*alert)),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> TlsIdentity {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "srv");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        TlsIdentity::from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            ca.pem().as_bytes(),
        )
        .unwrap()
    }

    /// A connection's configuration is built per connection: it must cost
    /// little beside the handshake (which takes hundreds of microseconds).
    /// `cargo test --release per_connection -- --nocapture` shows the cost.
    #[test]
    fn per_connection_configuration_is_cheap() {
        let shared = server_config(&ServerTls::new(identity())).unwrap();
        let rounds = 2000u32;
        let start = std::time::Instant::now();
        for i in 0..rounds {
            let (config, _) = shared
                .for_connection(IpAddr::from([192, 0, 2, (i % 250) as u8]))
                .unwrap();
            std::hint::black_box(config);
        }
        let each = start.elapsed() / rounds;
        eprintln!("per-connection rustls ServerConfig: {each:?}");
        assert!(each < std::time::Duration::from_millis(2), "{each:?}");
    }
}
