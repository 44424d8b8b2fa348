//! Mutual TLS on loopback, with throwaway certificates: both modes (direct
//! and RFC 9289 STARTTLS), every certificate rule on both sides, plain
//! peers meeting TLS peers, and what the verdicts say.
#![cfg(feature = "tls")]

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
}

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use peerwire::internals::starttls;
use peerwire::proto::{CallHeader, Message, MessageBody, RecordDecoder, RecordLimits, ReplyBody};
use peerwire::tls::{
    CertError, ClientTls, ServerCheck, ServerTls, TlsAlert, TlsError, TlsIdentity, TlsMode,
};
use peerwire::{
    CallContext, Client, ClientIdentity, ClientOptions, ConnectOptions, DisconnectCause, Endpoint,
    Error, IdentityMode, NodeId, PeerTable, ProcError, RunningServer, ScopedIp, Server,
    ServerIdentity, ServerOptions, Sources, Verdict, VerdictReason,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::pki::{Authority, LeafSpec, Validity};

const PROG: u32 = 0x2000_0077;

/// The window of the tests' certificates unless one says otherwise, in
/// years: rcgen's own default, whose notAfter a test sees shown.
const WINDOW: (i32, i32) = (1975, 4096);

/// A leaf of `ca` with this CN (if any) and IP SANs, valid over [`WINDOW`]
/// unless `window` gives other years: its PEM and its key's.
fn leaf(
    ca: &Authority,
    cn: Option<&str>,
    ips: &[&str],
    window: Option<(i32, i32)>,
) -> (String, String) {
    let (from, to) = window.unwrap_or(WINDOW);
    let leaf = ca.issue_spec(&LeafSpec {
        cn: cn.map(str::to_owned),
        ips: ips.iter().map(|s| ip(s)).collect(),
        valid: Validity::Years(from, to),
        ..LeafSpec::default()
    });
    (leaf.cert_pem, leaf.key_pem)
}

/// An identity with a leaf of `issuer` that trusts `trusted` instead:
/// what a peer from another CA presents.
fn stranger_of(
    issuer: &Authority,
    trusted: &Authority,
    cn: Option<&str>,
    ips: &[&str],
) -> TlsIdentity {
    let (cert, key) = leaf(issuer, cn, ips, None);
    TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), trusted.ca_pem().as_bytes()).unwrap()
}

fn identity_of(ca: &Authority, cn: Option<&str>, ips: &[&str]) -> TlsIdentity {
    identity_in(ca, cn, ips, None)
}

fn identity_in(
    ca: &Authority,
    cn: Option<&str>,
    ips: &[&str],
    window: Option<(i32, i32)>,
) -> TlsIdentity {
    let (cert, key) = leaf(ca, cn, ips, window);
    TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), ca.ca_pem().as_bytes()).unwrap()
}

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Procedure 1 echoes; procedure 2 returns the caller's certificate CN as
/// the server's handler saw it.
async fn service(ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
    match procedure {
        1 => Ok(args),
        2 => Ok(Bytes::from(
            ctx.tls.and_then(|peer| peer.cn.clone()).unwrap_or_default(),
        )),
        _ => Err(ProcError::ProcUnavail),
    }
}

/// A server "srv" on 127.0.0.1 (certificate CN "srv", IP SAN 127.0.0.1
/// unless `server_ips` says otherwise) that, with `identity`, accepts "a"
/// from 127.0.0.2.
fn server(
    ca: &Authority,
    mode: TlsMode,
    identity: bool,
    server_ips: &[&str],
) -> (RunningServer, Endpoint) {
    let options = ServerOptions {
        tls: Some(ServerTls {
            identity: identity_of(&ca, Some("srv"), server_ips),
            mode,
        }),
        identity: identity.then(|| ServerIdentity {
            node: id("srv"),
            cluster: None,
            peers: PeerTable::new().allow(id("a"), ["127.0.0.2".parse().unwrap()]),
            mode: IdentityMode::Strict,
        }),
        handshake_timeout: Duration::from_secs(5),
        ..ServerOptions::default()
    };
    serve(options, "127.0.0.1:0").unwrap()
}

/// A server with `options` and [`service`] on `listen`, and its address.
fn serve(options: ServerOptions, listen: &str) -> Result<(RunningServer, Endpoint), Error> {
    let server = Server::new(options)
        .service(PROG, 1, service)
        .serve(&[listen.parse().unwrap()])?;
    let address = Endpoint::from(server.local_addrs()[0]);
    Ok((server, address))
}

fn client_options(source: &str, tls: Option<ClientTls>, node: Option<&str>) -> ClientOptions {
    ClientOptions {
        connect: ConnectOptions {
            sources: Sources::new().with(source.parse::<ScopedIp>().unwrap()),
            connect_timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        },
        identity: node.map(|node| ClientIdentity::new(id(node), id("srv"))),
        tls,
        deadline: Duration::from_secs(5),
        breaker_threshold: 100,
        ..ClientOptions::default()
    }
}

/// A client of `address` with [`client_options`].
fn new_client(
    address: Endpoint,
    source: &str,
    tls: Option<ClientTls>,
    node: Option<&str>,
) -> Client {
    Client::new(vec![address], client_options(source, tls, node)).unwrap()
}

fn client_tls(identity: TlsIdentity, mode: TlsMode) -> ClientTls {
    ClientTls {
        identity,
        mode,
        server: ServerCheck::DialledIp,
    }
}

/// The newest verdict, once there is one with a reason (or accepted).
async fn verdict(server: &RunningServer, refused: bool) -> Verdict {
    verdict_where(server, |v| v.reason.is_some() == refused).await
}

/// The newest verdict that `wanted`, once there is one (within 2 s).
async fn verdict_where(server: &RunningServer, wanted: impl Fn(&Verdict) -> bool) -> Verdict {
    for _ in 0..200 {
        if let Some(v) = server.verdicts().into_iter().find(&wanted) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no verdict: {:?}", server.verdicts());
}

/// The TLS error inside a client's connect error.
fn tls_error(error: &Error) -> TlsError {
    match error {
        Error::Unreachable { error, .. } => tls_error(error),
        Error::Tls { error, .. } => (**error).clone(),
        other => panic!("not a TLS error: {other}"),
    }
}

/// January 1st of `year`, 00:00 UTC, as rcgen writes it into a
/// certificate's validity.
fn year_start(year: i32) -> std::time::SystemTime {
    rcgen::date_time_ymd(year, 1, 1).into()
}

/// Our certificate's and a peer's `notAfter` are shown: what an operator
/// watches to renew in time.
#[test]
fn certificates_show_when_they_expire() {
    let ca = Authority::new("test CA");
    let identity = identity_in(&ca, Some("a"), &["127.0.0.2"], Some((2020, 2090)));
    assert_eq!(identity.not_after(), Some(year_start(2090)));
}

async fn round_trip_with_identity(mode: TlsMode) {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, mode, true, &["127.0.0.1"]);
    let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.2"]), mode);
    let client = new_client(address, "127.0.0.2", Some(tls), Some("a"));
    let reply = client
        .call(PROG, 1, 1, Bytes::from_static(b"over tls"))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"over tls");
    // The handler saw the caller's certificate.
    let cn = client.call(PROG, 1, 2, Bytes::new()).await.unwrap();
    assert_eq!(&cn[..], b"a");
    // The client saw the server's.
    let peer = client.tls_peer().expect("a TLS link");
    assert_eq!(peer.cn.as_deref(), Some("srv"));
    assert_eq!(peer.ip_sans, vec![ip("127.0.0.1")]);
    assert_eq!(peer.version, "TLSv1.3");
    assert_eq!(
        peer.not_after,
        Some(year_start(4096)),
        "the notAfter of the tests' certificates"
    );
    assert_eq!(client.hello().unwrap().node, id("srv"));
    // The server's verdict and connection list show the certificate.
    let accepted = verdict(&server, false).await;
    assert_eq!(accepted.peer, Some(id("a")));
    let cert = accepted.tls.expect("verdict carries the certificate");
    assert_eq!(cert.cn.as_deref(), Some("a"));
    assert_eq!(cert.ip_sans, vec![ip("127.0.0.2")]);
    let connections = server.connections();
    assert_eq!(connections.len(), 1);
    assert_eq!(
        connections[0].tls.as_ref().unwrap().cn.as_deref(),
        Some("a")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn direct_tls_round_trip_with_identity() {
    round_trip_with_identity(TlsMode::Direct).await;
}

#[tokio::test]
async fn starttls_round_trip_with_identity() {
    round_trip_with_identity(TlsMode::StartTls).await;
}

#[tokio::test]
async fn a_hello_claiming_another_id_than_the_cn_is_refused_naming_cn_sans_and_observed() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, true, &["127.0.0.1"]);
    // A valid certificate for 127.0.0.2, but for node "x", claiming "a".
    let tls = client_tls(identity_of(&ca, Some("x"), &["127.0.0.2"]), TlsMode::Direct);
    let client = new_client(address, "127.0.0.2", Some(tls), Some("a"));
    let error = client.connect().await.unwrap_err();
    assert!(
        matches!(&error, Error::Unreachable { error, .. } if matches!(**error, Error::IdentityRefused { .. })),
        "{error}"
    );
    let v = verdict(&server, true).await;
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::CnMismatch {
            expected: "a".into(),
            cn: Some("x".into()),
        }))
    );
    assert_eq!(v.peer, Some(id("a")));
    assert_eq!(v.observed.ip(), ip("127.0.0.2"));
    let cert = v.tls.expect("the certificate's facts");
    assert_eq!(cert.cn.as_deref(), Some("x"));
    assert_eq!(cert.ip_sans, vec![ip("127.0.0.2")]);
    let text = v.reason.unwrap().to_string();
    assert!(text.contains("\"x\"") && text.contains("a"), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_for_another_ip_is_refused_as_ip_mismatch() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, true, &["127.0.0.1"]);
    // "a"'s certificate names 127.0.0.3; it connects from 127.0.0.2.
    let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.3"]), TlsMode::Direct);
    let client = new_client(address, "127.0.0.2", Some(tls), Some("a"));
    assert!(client.connect().await.is_err());
    let v = verdict(&server, true).await;
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::IpMismatch {
            observed: ip("127.0.0.2"),
            sans: vec![ip("127.0.0.3")],
            cn: Some("a".into()),
        }))
    );
    assert_eq!(v.tls.unwrap().ip_sans, vec![ip("127.0.0.3")]);
    let text = VerdictReason::Certificate(CertError::IpMismatch {
        observed: ip("127.0.0.2"),
        sans: vec![ip("127.0.0.3")],
        cn: Some("a".into()),
    })
    .to_string();
    assert!(
        text.contains("127.0.0.2") && text.contains("127.0.0.3") && text.contains("\"a\""),
        "{text}"
    );
    server.shutdown().await;
}

/// A call without HELLO that the server refused with `alert` after the
/// TLS handshake: a definite refusal, not run, naming the alert; and the
/// client's last connect error is the refusal.
fn assert_call_refused(error: &Error, client: &Client, alert: TlsAlert) {
    assert!(
        matches!(
            error,
            Error::Disconnected {
                cause: DisconnectCause::TlsRefused(got),
                sent: false,
                ..
            } if *got == alert
        ),
        "not refused with {alert}: {error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&alert.to_string()) && text.contains("the server refused our certificate"),
        "{text}"
    );
    assert!(text.contains("did not run"), "{text}");
    assert!(!text.contains("may have run"), "{text}");
    let connect = client.last_connect_error().expect("a connect error");
    assert_eq!(
        tls_error(&connect),
        TlsError::Refused { alert },
        "{connect}"
    );
}

/// A connect with HELLO that the server refused with `alert`.
fn assert_connect_refused(error: &Error, alert: TlsAlert) {
    assert_eq!(tls_error(error), TlsError::Refused { alert }, "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&alert.to_string()) && text.contains("the server refused our certificate"),
        "{text}"
    );
}

/// With `identity` (HELLO), a connect the server refuses with `alert`;
/// without, a call it refuses so ([`assert_call_refused`]). The error.
async fn refused_after_handshake(client: &Client, identity: bool, alert: TlsAlert) -> Error {
    if identity {
        let error = client.connect().await.unwrap_err();
        assert_connect_refused(&error, alert);
        error
    } else {
        let error = client
            .call(PROG, 1, 1, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_call_refused(&error, client, alert);
        error
    }
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_with_a_named_alert_and_not_run() {
    let ca = Authority::new("test CA");
    let other = Authority::new("another CA");
    let stranger = || stranger_of(&other, &ca, Some("a"), &["127.0.0.2"]);
    for identity in [false, true] {
        let (server, address) = server(&ca, TlsMode::Direct, identity, &["127.0.0.1"]);
        let tls = client_tls(stranger(), TlsMode::Direct);
        let client = new_client(address, "127.0.0.2", Some(tls), identity.then_some("a"));
        let error = refused_after_handshake(&client, identity, TlsAlert::UNKNOWN_CA).await;
        if identity {
            assert!(error.to_string().contains("does not trust"), "{error}");
        }
        let v = verdict(&server, true).await;
        assert_eq!(
            v.reason,
            Some(VerdictReason::Certificate(CertError::UnknownIssuer))
        );
        assert_eq!(server.stats().calls, 0);
        server.shutdown().await;
    }
}

/// The server refuses a certificate that does not name the observed
/// address (another IP, or no IP SAN) during the TLS handshake, with the
/// alert `access_denied`; its verdict names the rule, the CN, the SANs
/// and the version; the client's error names the alert.
async fn refused_for_the_address(ips: &[&str], rule: CertError) {
    let ca = Authority::new("test CA");
    for identity in [false, true] {
        let (server, address) = server(&ca, TlsMode::Direct, identity, &["127.0.0.1"]);
        let tls = client_tls(identity_of(&ca, Some("a"), ips), TlsMode::Direct);
        let client = new_client(address, "127.0.0.2", Some(tls), identity.then_some("a"));
        refused_after_handshake(&client, identity, TlsAlert::ACCESS_DENIED).await;
        let v = verdict(&server, true).await;
        assert_eq!(v.reason, Some(VerdictReason::Certificate(rule.clone())));
        assert_eq!(v.observed.ip(), ip("127.0.0.2"));
        let cert = v.tls.expect("the certificate's facts");
        assert_eq!(cert.cn.as_deref(), Some("a"));
        assert_eq!(cert.ip_sans, ips.iter().map(|s| ip(s)).collect::<Vec<_>>());
        assert_eq!(cert.version, "TLSv1.3");
        assert_eq!(server.stats().calls, 0);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_certificate_for_another_ip_is_refused_in_the_handshake_with_access_denied() {
    refused_for_the_address(
        &["127.0.0.3"],
        CertError::IpMismatch {
            observed: ip("127.0.0.2"),
            sans: vec![ip("127.0.0.3")],
            cn: Some("a".into()),
        },
    )
    .await;
}

#[tokio::test]
async fn a_certificate_without_an_ip_san_is_refused_in_the_handshake_with_access_denied() {
    refused_for_the_address(
        &[],
        CertError::NoIpSan {
            cn: Some("a".into()),
        },
    )
    .await;
}

#[tokio::test]
async fn repeated_refusals_after_the_handshake_count_toward_the_breaker() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, false, &["127.0.0.1"]);
    let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.3"]), TlsMode::Direct);
    let options = ClientOptions {
        breaker_threshold: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(1),
        ..client_options("127.0.0.2", Some(tls), None)
    };
    let client = Client::new(vec![address], options).unwrap();
    let mut open = false;
    for _ in 0..5 {
        match client.call(PROG, 1, 1, Bytes::new()).await.unwrap_err() {
            Error::CircuitOpen { .. } => {
                open = true;
                break;
            }
            error => assert_call_refused(&error, &client, TlsAlert::ACCESS_DENIED),
        }
    }
    assert!(open, "the breaker never opened");
    server.shutdown().await;
}

/// A raw rustls client with no certificate at all.
async fn connect_without_certificate(address: &Endpoint) -> std::io::Result<()> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    #[derive(Debug)]
    struct AnyServer;
    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyServer))
    .with_no_client_auth();
    let stream = TcpStream::connect(address.to_string()).await?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(ip("127.0.0.1").into()), stream)
        .await?;
    // TLS 1.3: the server's refusal arrives after our side is done.
    tls.write_all(b"\x80\0\0\x04abcd").await?;
    let mut buf = [0u8; 16];
    tls.read(&mut buf).await.map(drop)
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, false, &["127.0.0.1"]);
    let _ = connect_without_certificate(&address).await;
    let v = verdict(&server, true).await;
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::NoClientCertificate))
    );
    assert_eq!(server.stats().calls, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn chain_errors_are_matchable_on_both_sides() {
    let ca = Authority::new("test CA");
    let other = Authority::new("another CA");
    let (server, address) = server(&ca, TlsMode::Direct, false, &["127.0.0.1"]);
    // The server refuses a client certificate from another CA ...
    let stranger = TlsIdentity::from_pem(
        leaf(&other, Some("a"), &["127.0.0.2"], None).0.as_bytes(),
        leaf(&other, Some("a"), &["127.0.0.2"], None).1.as_bytes(),
        ca.ca_pem().as_bytes(),
    );
    // (a key from another leaf does not fit: that is a config error)
    assert!(
        matches!(stranger, Err(ref e) if e.is_config()),
        "{stranger:?}"
    );
    let stranger = stranger_of(&other, &ca, Some("a"), &["127.0.0.2"]);
    let client = new_client(
        address.clone(),
        "127.0.0.2",
        Some(client_tls(stranger, TlsMode::Direct)),
        None,
    );
    let _ = client.call(PROG, 1, 1, Bytes::new()).await;
    let v = verdict(&server, true).await;
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::UnknownIssuer))
    );
    // ... and an expired one.
    let expired = identity_in(&ca, Some("a"), &["127.0.0.2"], Some((2000, 2001)));
    let client = new_client(
        address.clone(),
        "127.0.0.2",
        Some(client_tls(expired, TlsMode::Direct)),
        None,
    );
    let _ = client.call(PROG, 1, 1, Bytes::new()).await;
    verdict_where(&server, |v| {
        v.reason == Some(VerdictReason::Certificate(CertError::Expired))
    })
    .await;
    // A client that trusts only another CA refuses this server.
    let theirs = client_tls(
        identity_of(&other, Some("a"), &["127.0.0.2"]),
        TlsMode::Direct,
    );
    let client = new_client(address, "127.0.0.2", Some(theirs), None);
    let error = client.connect().await.unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Certificate(CertError::UnknownIssuer),
        "{error}"
    );
    server.shutdown().await;

    // The client refuses a server certificate that is not valid yet, or
    // from a CA it does not trust.
    let options = ServerOptions {
        tls: Some(ServerTls::new(identity_in(
            &ca,
            Some("srv"),
            &["127.0.0.1"],
            Some((2090, 2091)),
        ))),
        ..ServerOptions::default()
    };
    let (server, address) = serve(options, "127.0.0.1:0").unwrap();
    let mine = client_tls(identity_of(&ca, Some("a"), &["127.0.0.2"]), TlsMode::Direct);
    let client = new_client(address.clone(), "127.0.0.2", Some(mine), None);
    let error = client.connect().await.unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Certificate(CertError::NotYetValid),
        "{error}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_certificate_without_the_dialled_ip_fails_the_client_unless_checked_by_cn() {
    let ca = Authority::new("test CA");
    // The server's certificate names 127.0.0.5; we dial 127.0.0.1.
    let (server, address) = server(&ca, TlsMode::Direct, true, &["127.0.0.5"]);
    let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.2"]), TlsMode::Direct);
    let client = new_client(address.clone(), "127.0.0.2", Some(tls.clone()), Some("a"));
    let error = client.connect().await.unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Certificate(CertError::IpMismatch {
            observed: ip("127.0.0.1"),
            sans: vec![ip("127.0.0.5")],
            cn: Some("srv".into()),
        }),
        "{error}"
    );
    assert!(error.to_string().contains("127.0.0.5"), "{error}");
    // The failure counts as a connect failure.
    assert!(client.last_connect_error().is_some());

    // By CN, the same server is accepted.
    let by_cn = ClientTls {
        server: ServerCheck::Cn("srv".into()),
        ..tls.clone()
    };
    let client = new_client(address.clone(), "127.0.0.2", Some(by_cn), Some("a"));
    let reply = client
        .call(PROG, 1, 1, Bytes::from_static(b"by cn"))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"by cn");
    // Another CN is not.
    let wrong_cn = ClientTls {
        server: ServerCheck::Cn("glusterd".into()),
        ..tls
    };
    let client = new_client(address, "127.0.0.2", Some(wrong_cn), Some("a"));
    let error = client.connect().await.unwrap_err();
    assert!(
        matches!(
            tls_error(&error),
            TlsError::Certificate(CertError::CnMismatch { .. })
        ),
        "{error}"
    );
    server.shutdown().await;
}

/// Reads one record from a raw stream.
async fn read_record(stream: &mut TcpStream) -> Option<Bytes> {
    let mut records = RecordDecoder::new(RecordLimits::default());
    let mut buf = BytesMut::new();
    loop {
        if let Some(record) = records.decode(&mut buf).unwrap() {
            return Some(record);
        }
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

fn framed(message: &Message) -> Bytes {
    let mut body = BytesMut::new();
    message.encode(&mut body);
    let mut out = BytesMut::new();
    peerwire::proto::RecordEncoder::default().encode(&body, &mut out);
    out.freeze()
}

#[tokio::test]
async fn a_starttls_client_against_a_plain_server_fails_without_sending_a_plain_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = Endpoint::from(listener.local_addr().unwrap());
    // A plain server: answers the probe as a NULL call, without the
    // STARTTLS token, then records whatever else arrives.
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let record = read_record(&mut stream).await.expect("the probe");
        let probe = Message::decode(record).unwrap();
        let MessageBody::Call { header, .. } = &probe.body else {
            panic!("not a call")
        };
        assert!(starttls::is_probe(header), "{header:?}");
        let reply = Message::reply(
            probe.xid,
            ReplyBody::accepted(peerwire::proto::AcceptStatus::Success),
            Bytes::new(),
        );
        stream.write_all(&framed(&reply)).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        rest
    });
    let ca = Authority::new("test CA");
    let tls = client_tls(
        identity_of(&ca, Some("a"), &["127.0.0.1"]),
        TlsMode::StartTls,
    );
    let client = new_client(address, "127.0.0.1", Some(tls), None);
    let error = client
        .call(PROG, 1, 1, Bytes::from_static(b"secret"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Tls { error, .. } if **error == TlsError::StartTlsRefused),
        "{error}"
    );
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    drop(client);
    let rest = peer.await.unwrap();
    assert!(
        rest.is_empty(),
        "sent in plain text after the probe: {rest:?}"
    );
}

#[tokio::test]
async fn a_plain_client_against_a_direct_tls_server_is_told_it_seems_to_expect_tls() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, false, &["127.0.0.1"]);
    let client = new_client(address, "127.0.0.1", None, None);
    let error = client
        .call(PROG, 1, 1, Bytes::from_static(b"plain"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Disconnected {
                cause: DisconnectCause::ExpectsTls,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("seems to expect TLS"), "{error}");
    let v = verdict(&server, true).await;
    assert_eq!(v.reason, Some(VerdictReason::PlainTextRefused));
    assert_eq!(server.stats().calls, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_plain_client_with_identity_that_gets_tls_bytes_is_told_it_seems_to_expect_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = Endpoint::from(listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = read_record(&mut stream).await;
        // A TLS alert record: protocol_version.
        let _ = stream
            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let client = new_client(address, "127.0.0.1", None, Some("a"));
    let error = client.connect().await.unwrap_err();
    let Error::Unreachable { error, .. } = &error else {
        panic!("{error}")
    };
    assert!(matches!(**error, Error::ExpectsTls { .. }), "{error}");
    assert!(error.to_string().contains("seems to expect TLS"), "{error}");
}

#[tokio::test]
async fn a_hello_less_probe_to_a_starttls_server_is_answered_per_rfc_9289_then_tls_runs() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::StartTls, false, &["127.0.0.1"]);
    let mut stream = TcpStream::connect(address.to_string()).await.unwrap();
    stream
        .write_all(&starttls::probe(0xabcd, 100_003, 4))
        .await
        .unwrap();
    let record = read_record(&mut stream).await.expect("an answer");
    // MSG_ACCEPTED, AUTH_NONE verifier with body "STARTTLS".
    let reply = Message::decode(record.clone()).unwrap();
    assert_eq!(reply.xid, 0xabcd);
    let MessageBody::Reply {
        body: ReplyBody::Accepted { verf, .. },
        ..
    } = &reply.body
    else {
        panic!("{reply:?}")
    };
    assert_eq!((verf.flavor, &verf.body[..]), (0, &b"STARTTLS"[..]));
    assert!(starttls::answers_starttls(record, 0xabcd));
    // Then TLS on the same connection, and RPC inside it.
    let (cert, key) = leaf(&ca, Some("a"), &["127.0.0.1"], None);
    let chain: Vec<_> = rustls::pki_types::pem::PemObject::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
        .unwrap();
    let key: rustls::pki_types::PrivateKeyDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::pem::PemObject::from_pem_slice(ca.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::IpAddress(ip("127.0.0.1").into()),
            stream,
        )
        .await
        .unwrap();
    let call = Message::call(
        7,
        CallHeader::new(PROG, 1, 1),
        Bytes::from_static(b"inside"),
    );
    tls.write_all(&framed(&call)).await.unwrap();
    let mut buf = BytesMut::new();
    let mut records = RecordDecoder::new(RecordLimits::default());
    let record = loop {
        if let Some(record) = records.decode(&mut buf).unwrap() {
            break record;
        }
        assert!(tls.read_buf(&mut buf).await.unwrap() > 0, "closed");
    };
    let reply = Message::decode(record).unwrap();
    assert!(
        matches!(reply.body, MessageBody::Reply { ref results, .. } if &results[..] == b"inside")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn tls_servers_survive_garbage_and_plain_calls() {
    let ca = Authority::new("test CA");
    for mode in [TlsMode::Direct, TlsMode::StartTls] {
        let (server, address) = server(&ca, mode, false, &["127.0.0.1"]);
        let garbage: [&[u8]; 4] = [
            b"\x00\x01\x02garbage\xff\xfe",
            b"\x16\x03\x01\x00\x05hello",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            &framed(&Message::call(
                1,
                CallHeader::new(PROG, 1, 1),
                Bytes::from_static(b"x"),
            )),
        ];
        for bytes in garbage {
            let mut stream = TcpStream::connect(address.to_string()).await.unwrap();
            let _ = stream.write_all(bytes).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        }
        assert!(
            server
                .verdicts()
                .iter()
                .any(|v| v.reason == Some(VerdictReason::PlainTextRefused)),
            "{:?}",
            server.verdicts()
        );
        assert_eq!(server.stats().calls, 0);
        // And it still serves a proper client.
        let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.1"]), mode);
        let client = new_client(address, "127.0.0.1", Some(tls), None);
        let reply = client
            .call(PROG, 1, 1, Bytes::from_static(b"still here"))
            .await
            .unwrap();
        assert_eq!(&reply[..], b"still here");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn ipv6_loopback_works_with_an_ip_san_of_colon_colon_1() {
    let ca = Authority::new("test CA");
    let options = ServerOptions {
        tls: Some(ServerTls::new(identity_of(&ca, Some("srv"), &["::1"]))),
        ..ServerOptions::default()
    };
    let Ok((server, address)) = serve(options, "[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let tls = client_tls(identity_of(&ca, Some("a"), &["::1"]), TlsMode::Direct);
    let client = new_client(address, "::1", Some(tls), None);
    let cn = client.call(PROG, 1, 2, Bytes::new()).await.unwrap();
    assert_eq!(&cn[..], b"a");
    server.shutdown().await;
}

#[test]
fn identities_load_from_files_and_a_key_that_does_not_fit_is_a_config_error() {
    let ca = Authority::new("test CA");
    let dir = std::env::temp_dir().join(format!(
        "peerwire-tls-{}-{}",
        std::process::id(),
        rand_part()
    ));
    std::fs::create_dir(&dir).unwrap();
    let (cert, key) = leaf(&ca, Some("node-a"), &["127.0.0.2"], None);
    let (_, other_key) = leaf(&ca, Some("node-b"), &["127.0.0.3"], None);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (cert, key, other_key, ca_file) = (
        write("cert.pem", &cert),
        write("key.pem", &key),
        write("other.key", &other_key),
        write("ca.pem", &ca.ca_pem()),
    );
    let identity = TlsIdentity::from_pem_files(&cert, &key, &ca_file).unwrap();
    assert_eq!(identity.cn(), Some("node-a"));
    let error = TlsIdentity::from_pem_files(&cert, &other_key, &ca_file).unwrap_err();
    assert!(error.is_config());
    assert!(error.to_string().contains("other.key"), "{error}");
    let missing = TlsIdentity::from_pem_files(&dir.join("nope.pem"), &key, &ca_file).unwrap_err();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    let no_ca = TlsIdentity::from_pem_files(&cert, &key, &key).unwrap_err();
    assert!(no_ca.to_string().contains("key.pem"), "{no_ca}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn rand_part() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A record larger than the socket buffers and rustls's own: the last of
/// it sits encrypted in the TLS session after the outbox is empty, and
/// must still be flushed, on both sides.
#[tokio::test]
async fn large_records_are_flushed_whole_over_tls() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, false, &["127.0.0.1"]);
    let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.1"]), TlsMode::Direct);
    let client = new_client(address, "127.0.0.1", Some(tls), None);
    for len in [3 << 20, 8 << 20, 1 << 20] {
        let payload = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let reply = client.call(PROG, 1, 1, payload.clone()).await.unwrap();
        assert!(reply == payload, "{len} bytes came back altered");
    }
    server.shutdown().await;
}

/// A raw rustls client configuration: `ca`'s leaf with this CN and IP
/// SANs as our certificate, and `ca` as the roots the server must chain to.
fn raw_client_config(ca: &Authority, cn: &str, ips: &[&str]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = leaf(&ca, Some(cn), ips, None);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
    )
    .unwrap();
    Arc::new(config)
}

/// A NULL call on a raw stream; true when it is answered (false: the
/// server closed the connection, or it never got through its handshake).
async fn null_answered<S: AsyncReadExt + AsyncWriteExt + Unpin>(stream: &mut S) -> bool {
    let call = framed(&Message::call(7, CallHeader::new(PROG, 1, 0), Bytes::new()));
    if stream.write_all(&call).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    let mut records = RecordDecoder::new(RecordLimits::default());
    let mut buf = BytesMut::new();
    let read = async {
        loop {
            if let Ok(Some(_)) = records.decode(&mut buf) {
                return true;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    };
    // Generous: it only bounds a failing run.
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("neither an answer nor a close")
}

/// Connections still in their TLS handshake (or just past it) when
/// `update` refuses their address: once it returns, none of them answers a
/// call, not even a NULL before HELLO, though each was admitted by the old
/// lists at accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tls_connection_is_served_under_the_old_lists_once_update_returns() {
    use peerwire::Admission;
    const ROUNDS: usize = 30;
    const PER_ROUND: usize = 16;
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, true, &["127.0.0.1"]);
    let identity = || ServerIdentity {
        node: id("srv"),
        cluster: None,
        peers: PeerTable::new().allow(id("a"), ["127.0.0.1".parse().unwrap()]),
        mode: IdentityMode::Strict,
    };
    let refuse = Admission {
        reject: vec!["127.0.0.0/8".parse().unwrap()],
        allow: Vec::new(),
    };
    let config = raw_client_config(&ca, "a", &["127.0.0.1"]);
    let target = address.to_string();
    let mut leaks = Vec::new();
    for round in 0..ROUNDS {
        server
            .update(Admission::default(), Some(identity()))
            .unwrap();
        let base = server.stats().accepted;
        let connects: Vec<_> = (0..PER_ROUND)
            .map(|_| {
                let (config, target) = (config.clone(), target.clone());
                tokio::spawn(async move {
                    let stream = TcpStream::connect(target).await?;
                    let name = rustls::pki_types::ServerName::IpAddress(ip("127.0.0.1").into());
                    tokio_rustls::TlsConnector::from(config)
                        .connect(name, stream)
                        .await
                })
            })
            .collect();
        // Spin without yielding until half are accepted: the update lands
        // while the others are being accepted or are in their handshake.
        let start = std::time::Instant::now();
        while server.stats().accepted < base + (PER_ROUND / 2) as u64
            && start.elapsed() < Duration::from_secs(10)
        {
            std::hint::spin_loop();
        }
        server.update(refuse.clone(), Some(identity())).unwrap();
        let mut leaked = 0;
        for connect in connects {
            if let Ok(mut stream) = connect.await.unwrap()
                && null_answered(&mut stream).await
            {
                leaked += 1;
            }
        }
        if leaked > 0 {
            leaks.push((round, leaked));
        }
    }
    assert!(
        leaks.is_empty(),
        "(round, connections answered after update returned): {leaks:?}"
    );
    server.shutdown().await;
}

/// A TCP proxy for one connection, between a client and a TLS server,
/// that can spoil the client's next write (so that the server's rustls
/// finds a bad record MAC and answers with the fatal alert
/// `bad_record_mac`) and can hold the server's bytes back until the server
/// closes, then deliver them in one write.
struct Proxy {
    address: Endpoint,
    /// Flip the last byte of the client's next chunk.
    corrupt: Arc<std::sync::atomic::AtomicBool>,
    /// Hold the server's bytes until it closes.
    hold: Arc<std::sync::atomic::AtomicBool>,
    /// Bytes held so far.
    held: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    async fn start(server: Endpoint) -> Proxy {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = Endpoint::from(listener.local_addr().unwrap());
        let proxy = Proxy {
            address,
            corrupt: Default::default(),
            hold: Default::default(),
            held: Default::default(),
        };
        let (corrupt, hold, held) = (
            proxy.corrupt.clone(),
            proxy.hold.clone(),
            proxy.held.clone(),
        );
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let upstream = TcpStream::connect(server.to_string()).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = upstream.into_split();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if corrupt.swap(false, SeqCst) {
                        buf[n - 1] ^= 0x55;
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let mut buf = vec![0u8; 64 * 1024];
            let mut kept = Vec::new();
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if hold.load(SeqCst) {
                    kept.extend_from_slice(&buf[..n]);
                    held.store(kept.len(), SeqCst);
                } else if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            let _ = client_write.write_all(&kept).await;
            let _ = client_write.shutdown().await;
        });
        proxy
    }
}

/// A TLS server (no identity) whose procedure 1 echoes and whose procedure
/// 3 counts its calls in `ran` and never answers.
fn alert_server(
    ca: &Authority,
    ran: Arc<std::sync::atomic::AtomicUsize>,
) -> (RunningServer, Endpoint) {
    let options = ServerOptions {
        tls: Some(ServerTls {
            identity: identity_of(&ca, Some("srv"), &["127.0.0.1"]),
            mode: TlsMode::Direct,
        }),
        ..ServerOptions::default()
    };
    let running = Server::new(options)
        .service(PROG, 1, move |_: CallContext, procedure, args: Bytes| {
            let ran = ran.clone();
            async move {
                match procedure {
                    1 => Ok(args),
                    3 => {
                        ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::future::pending().await
                    }
                    _ => Err(ProcError::ProcUnavail),
                }
            }
        })
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let address = Endpoint::from(running.local_addrs()[0]);
    (running, address)
}

/// Waits (polling, for at most 10 s: it only bounds a failing run) until
/// `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "gave up: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A call lost with the connection after it was written: "sent" (it may
/// have run), and not a refusal of our certificate.
fn assert_lost_as_sent(result: &Result<Bytes, Error>) {
    match result {
        Err(Error::Disconnected { cause, sent, .. }) => {
            assert!(*sent, "a written call reported not sent: {cause}");
            assert!(
                !matches!(cause, DisconnectCause::TlsRefused(_)),
                "reported as a refusal: {cause}"
            );
        }
        other => panic!("not a disconnect: {other:?}"),
    }
}

/// The server ran a call (which has not answered yet), then ended the TLS
/// session with a fatal alert (`bad_record_mac`, for a record spoiled on
/// the way): that is no refusal of our certificate, and the calls written,
/// the one that ran among them, are reported sent, so that no caller takes
/// them for safe to retry.
#[tokio::test]
async fn a_fatal_alert_after_the_server_ran_a_call_is_no_refusal_and_the_calls_count_as_sent() {
    let ca = Authority::new("test CA");
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (server, address) = alert_server(&ca, ran.clone());
    let proxy = Proxy::start(address).await;
    let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.1"]), TlsMode::Direct);
    let client = new_client(proxy.address.clone(), "127.0.0.1", Some(tls), None);
    client.connect().await.unwrap();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.call(PROG, 1, 3, Bytes::from_static(b"runs")).await }
    });
    until("the first call ran", || {
        ran.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    proxy
        .corrupt
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let second = client
        .call(PROG, 1, 1, Bytes::from_static(b"spoiled"))
        .await;
    let first = first.await.unwrap();
    assert_lost_as_sent(&first);
    assert_lost_as_sent(&second);
    match first {
        Err(Error::Disconnected { cause, .. }) => {
            assert_eq!(cause, DisconnectCause::TlsAlert(TlsAlert::from_code(20)));
            assert!(cause.to_string().contains("bad_record_mac"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

/// The server answered a call, then ended the TLS session with a fatal
/// alert, and both reached the client in one read: the answer is
/// delivered (not lost with the session), and the call written after it
/// is reported sent.
#[tokio::test]
async fn a_reply_that_arrives_with_a_fatal_alert_is_delivered() {
    use std::sync::atomic::Ordering::SeqCst;
    let ca = Authority::new("test CA");
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (server, address) = alert_server(&ca, ran);
    let proxy = Proxy::start(address).await;
    let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.1"]), TlsMode::Direct);
    let client = new_client(proxy.address.clone(), "127.0.0.1", Some(tls), None);
    client.connect().await.unwrap();
    // Nothing more comes from the server until it answers (TLS 1.3, no
    // session tickets): hold its answer back.
    proxy.hold.store(true, SeqCst);
    let first = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call(PROG, 1, 1, Bytes::from_static(b"answered"))
                .await
        }
    });
    until("the answer reached the proxy", || {
        proxy.held.load(SeqCst) > 0
    })
    .await;
    proxy.corrupt.store(true, SeqCst);
    let second = client
        .call(PROG, 1, 1, Bytes::from_static(b"spoiled"))
        .await;
    let first = first.await.unwrap();
    assert_eq!(first.as_deref().ok(), Some(&b"answered"[..]), "{first:?}");
    assert_lost_as_sent(&second);
    server.shutdown().await;
}
