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

use super::TlsVersion;
use super::certificate::facts;
use super::revocation::{Presented, Revocation, Usage};
use super::{
    CertError, TlsConfigError, TlsError, TlsIdentity, TlsPeer, check_address,
    check_server_certificate, provider,
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
/// [`crate::tls`] (and against the identity's revocation lists, if any).
/// A running server takes a new one with
/// [`RunningServer::update_tls`](crate::RunningServer::update_tls).
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
/// finish within [`crate::ConnectOptions::connect_timeout`]. The server's
/// chain is checked against the identity's revocation lists, if any. A
/// running client takes a new one with
/// [`Client::update_tls`](crate::Client::update_tls).
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

/// What every server connection's rustls configuration shares, built
/// once from [`ServerTls`] (and again at each update): the provider, the
/// chain verifier (our roots), the revocation check (our CRLs), our
/// certified key and the mode. A connection's configuration
/// ([`ServerShared::for_connection`]) adds a verifier that knows the
/// address the connection comes from.
#[derive(Debug)]
pub(crate) struct ServerShared {
    provider: Arc<CryptoProvider>,
    chain: Arc<dyn ClientCertVerifier>,
    roots: Arc<RootCertStore>,
    revocation: Arc<Revocation>,
    key: Arc<CertifiedKey>,
    mode: TlsMode,
}

/// The server's shared TLS parts: a client certificate required, chained
/// to our roots and not revoked by our CRLs; our chain and key (which must
/// fit).
pub(crate) fn server_config(tls: &ServerTls) -> Result<ServerShared, TlsError> {
    let provider = Arc::new(provider());
    let roots = tls.identity.roots();
    let chain = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(rejected)?;
    let key = CertifiedKey::from_der(tls.identity.chain(), tls.identity.key(), &provider)
        .map_err(rejected)?;
    let revocation = Revocation::new(
        tls.identity.crls(),
        provider.signature_verification_algorithms.all,
    );
    let shared = ServerShared {
        provider,
        chain,
        roots,
        revocation: Arc::new(revocation),
        key: Arc::new(key),
        mode: tls.mode,
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
            roots: self.roots.clone(),
            revocation: self.revocation.clone(),
            observed,
            judged: judged.clone(),
        });
        let resolver = Arc::new(OurKey {
            key: self.key.clone(),
            judged: judged.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(rejected)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver);
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok((Arc::new(config), judged))
    }

    /// How connections start TLS.
    pub(crate) fn mode(&self) -> TlsMode {
        self.mode
    }

    /// The revocation check in force; a connection keeps the one it was
    /// judged by, to tell when it must be judged again.
    pub(crate) fn revocation(&self) -> &Arc<Revocation> {
        &self.revocation
    }

    /// What a client presented on a connection that passed: kept to judge
    /// it again when the CRLs change.
    pub(crate) fn presented(&self, chain: &[CertificateDer<'static>]) -> Option<Presented> {
        Presented::new(chain, self.roots.clone(), Usage::Client)
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
    /// The certificate's facts and the failure of the address rule (or of
    /// the revocation check).
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
        peer.version = if inner.tls13 {
            TlsVersion::Tls13
        } else {
            TlsVersion::Tls12
        };
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
/// webpki verifier for the chain, our CRLs, then [`check_address`] against
/// the address the connection comes from. A failure of the address rule is
/// `ApplicationVerificationFailure`, which rustls sends as the fatal alert
/// `access_denied`; a revoked certificate is `Revoked`, sent as
/// `certificate_revoked`; the rule's own error and the certificate's facts
/// go to [`Judged`].
#[derive(Debug)]
struct AddressVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    roots: Arc<RootCertStore>,
    revocation: Arc<Revocation>,
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
        let peer = facts(end_entity, super::TlsVersion::Unknown).map_err(ours)?;
        let revocation =
            self.revocation
                .check(end_entity, intermediates, &self.roots, now, Usage::Client);
        if let Err(failure) = revocation {
            let error = failure.cert_error(end_entity);
            self.judged.lock().refused = Some((peer, error.clone()));
            return Err(match failure {
                super::revocation::Failure::Revoked => {
                    rustls::Error::InvalidCertificate(CertificateError::Revoked)
                }
                super::revocation::Failure::Unchecked(_) => ours(error),
            });
        }
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

/// A client's TLS material, built from [`ClientTls`] (at the first
/// connect, and at each update): the settings, the rustls configuration
/// and the revocation check.
#[derive(Debug)]
pub(crate) struct ClientShared {
    pub(crate) tls: ClientTls,
    pub(crate) config: Arc<ClientConfig>,
    revocation: Arc<Revocation>,
}

impl ClientShared {
    /// What the server presented on a connection that passed: kept to
    /// judge it again when the CRLs change.
    pub(crate) fn presented(&self, chain: &[CertificateDer<'static>]) -> Option<Presented> {
        Presented::new(chain, self.tls.identity.roots(), Usage::Server)
    }

    /// The revocation check in force.
    pub(crate) fn revocation(&self) -> &Revocation {
        &self.revocation
    }
}

/// The client's rustls configuration: our chain as the client
/// certificate, and [`PeerVerifier`] for the server's.
pub(crate) fn client_config(tls: &ClientTls) -> Result<Arc<ClientShared>, TlsError> {
    let provider = Arc::new(provider());
    let revocation = Arc::new(Revocation::new(
        tls.identity.crls(),
        provider.signature_verification_algorithms.all,
    ));
    let verifier = Arc::new(PeerVerifier {
        roots: tls.identity.roots(),
        check: tls.server.clone(),
        algorithms: provider.signature_verification_algorithms,
        revocation: revocation.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(tls.identity.chain(), tls.identity.key())
        .map_err(rejected)?;
    Ok(Arc::new(ClientShared {
        tls: tls.clone(),
        config: Arc::new(config),
        revocation,
    }))
}

/// The client's check of the server's certificate: rustls's webpki
/// helpers verify the chain and the handshake signatures; our CRLs are
/// checked next; the name rule (the dialled IP, or the configured CN) is
/// ours ([`check_server_certificate`]), so its failure is our
/// [`CertError`].
#[derive(Debug)]
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    check: ServerCheck,
    algorithms: WebPkiSupportedAlgorithms,
    revocation: Arc<Revocation>,
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
        self.revocation
            .check(end_entity, intermediates, &self.roots, now, Usage::Server)
            .map_err(|failure| ours(failure.cert_error(end_entity)))?;
        let peer = facts(end_entity, super::TlsVersion::Unknown).map_err(ours)?;
        // We always connect by IP, so the name is the dialled address.
        let dialled = match server_name {
            ServerName::IpAddress(ip) => IpAddr::from(*ip),
            other => {
                return Err(ours(CertError::Invalid {
                    detail: format!("dialled a name ({other:?}), not an IP address"),
                }));
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

/// rustls's refusal to build a configuration from our material.
fn rejected(error: impl std::fmt::Display) -> TlsError {
    TlsError::Config(TlsConfigError::Rejected {
        detail: error.to_string(),
    })
}

/// The session's protocol version, as [`super::TlsPeer::version`] reports it.
pub(crate) fn tls_version(version: Option<rustls::ProtocolVersion>) -> TlsVersion {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
        Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
        _ => TlsVersion::Unknown,
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
