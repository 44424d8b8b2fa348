//! Every certificate rule on both sides: what is refused, in the handshake
//! or after it, with which alert, and what the verdicts and errors say.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peerwire::tls::{
    CertError, ClientTls, ServerCheck, ServerTls, TlsAlert, TlsError, TlsIdentity, TlsMode,
};
use peerwire::{
    Client, ClientOptions, DisconnectCause, Endpoint, Error, ServerOptions, VerdictReason,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{
    client_options, client_tls, identity_in, identity_of, leaf, new_client, serve, server,
    stranger_of, verdict,
};
use crate::support::common::{PROG, id, ip, tls_error, verdict_where};
use crate::support::pki::Authority;

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
        assert_eq!(cert.version, peerwire::tls::TlsVersion::Tls13);
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
        matches!(stranger, Err(peerwire::tls::TlsError::Config(_))),
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
