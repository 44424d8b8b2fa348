//! Mutual TLS on loopback, with throwaway certificates: both modes (direct
//! and RFC 9289 STARTTLS), every certificate rule on both sides, plain
//! peers meeting TLS peers, and what the verdicts say. Round trips,
//! identities and large records are here; the certificate rules in
//! tls/refusals.rs, plain peers in tls/plain_peers.rs, and the end of TLS
//! sessions in tls/session_end.rs.
#![cfg(feature = "tls")]

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/pki.rs"]
    pub mod pki;
}

#[path = "tls/plain_peers.rs"]
mod plain_peers;
#[path = "tls/refusals.rs"]
mod refusals;
#[path = "tls/session_end.rs"]
mod session_end;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peerwire::tls::{
    ClientTls, ServerCheck, ServerTls, TlsConfigError, TlsError, TlsIdentity, TlsMode, TlsPart,
};
use peerwire::{
    CallContext, Client, ClientIdentity, ClientOptions, ConnectOptions, Endpoint, Error,
    IdentityMode, PeerTable, ProcError, RunningServer, ScopedIp, Server, ServerIdentity,
    ServerOptions, Sources, Verdict,
};

use support::common::{PROG, id, ip, verdict_where};
use support::pki::{Authority, LeafSpec, Validity};

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

/// A raw rustls client configuration: `ca`'s leaf with this CN and IP
/// SANs as our certificate, and `ca` as the roots the server must chain to.
fn raw_client_config(ca: &Authority, cn: &str, ips: &[&str]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = leaf(ca, Some(cn), ips, None);
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
            identity: identity_of(ca, Some("srv"), server_ips),
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
    assert_eq!(peer.version, peerwire::tls::TlsVersion::Tls13);
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
        write("ca.pem", ca.ca_pem()),
    );
    let identity = TlsIdentity::from_pem_files(&cert, &key, &ca_file).unwrap();
    assert_eq!(identity.cn(), Some("node-a"));
    let error = TlsIdentity::from_pem_files(&cert, &other_key, &ca_file).unwrap_err();
    assert!(
        matches!(
            &error,
            TlsError::Config(config @ TlsConfigError::KeyMismatch { key, .. })
                if key.ends_with("other.key") && config.part() == Some(TlsPart::Key)
        ),
        "{error}"
    );
    assert!(error.to_string().contains("other.key"), "{error}");
    let missing = TlsIdentity::from_pem_files(&dir.join("nope.pem"), &key, &ca_file).unwrap_err();
    assert!(
        matches!(
            &missing,
            TlsError::Config(TlsConfigError::Unreadable {
                part: TlsPart::Certificate,
                kind: std::io::ErrorKind::NotFound,
                ..
            })
        ),
        "{missing}"
    );
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    // Each part with nothing of its kind in it.
    let empty = write("empty.pem", "");
    for (files, part) in [
        ([&empty, &key, &ca_file], TlsPart::Certificate),
        ([&cert, &empty, &ca_file], TlsPart::Key),
        ([&cert, &key, &empty], TlsPart::Ca),
    ] {
        let error = TlsIdentity::from_pem_files(files[0], files[1], files[2]).unwrap_err();
        assert!(
            matches!(
                &error,
                TlsError::Config(TlsConfigError::Missing { part: p, origin })
                    if *p == part && origin.ends_with("empty.pem")
            ),
            "{part}: {error}"
        );
    }
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
