//! Renewing TLS material on running servers and clients, and revoking
//! certificates with CRLs: at the handshake, and for live connections when
//! an update brings a CRL that revokes their peer. On loopback, with
//! throwaway CAs and certificates whose serials the tests choose.
#![cfg(feature = "tls")]

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/temp.rs"]
    pub mod temp;
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use peerwire::tls::{
    CertError, ClientTls, RevocationList, ServerTls, TlsAlert, TlsConfigError, TlsError,
    TlsIdentity, TlsPart,
};
use peerwire::{
    Admission, CallContext, Client, ClientIdentity, ClientOptions, ConnectOptions, ConnectionState,
    Endpoint, Error, IdentityMode, PeerTable, ProcError, RunningServer, ScopedIp, Server,
    ServerIdentity, ServerOptions, Sources, VerdictReason,
};

use support::common::{PROG, id, start, tls_error, verdict_where};
use support::pki::{Authority, LeafSpec};
use support::temp::TempDir;

/// A leaf of `ca` with this CN, IP SAN and serial: its PEM and its key's.
fn leaf(ca: &Authority, cn: &str, ip: &str, serial: u16) -> (String, String) {
    let leaf = ca.issue_spec(&LeafSpec {
        serial: Some(serial.to_be_bytes().to_vec()),
        ..LeafSpec::node(cn, &[ip.parse().unwrap()])
    });
    (leaf.cert_pem, leaf.key_pem)
}

/// An identity with a leaf of `issuer`, trusting `trusted`.
fn identity_trusting(
    issuer: &Authority,
    cn: &str,
    ip: &str,
    serial: u16,
    trusted: &[&Authority],
) -> TlsIdentity {
    let (cert, key) = leaf(issuer, cn, ip, serial);
    let roots: String = trusted.iter().map(|ca| ca.ca_pem()).collect();
    TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), roots.as_bytes()).unwrap()
}

/// An identity with a leaf of `ca`, trusting `ca`.
fn identity_of(ca: &Authority, cn: &str, ip: &str, serial: u16) -> TlsIdentity {
    identity_trusting(ca, cn, ip, serial, &[ca])
}

/// A CRL of `ca` revoking `serials`.
fn crl(ca: &Authority, serials: &[u16]) -> rcgen::CertificateRevocationList {
    let serials: Vec<String> = serials.iter().map(|serial| hex(*serial)).collect();
    ca.crl(&serials.iter().map(String::as_str).collect::<Vec<_>>())
}

/// [`crl`], parsed from its PEM.
fn crl_list(ca: &Authority, serials: &[u16]) -> RevocationList {
    let pem = crl(ca, serials).pem().unwrap();
    let mut lists = RevocationList::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(lists.len(), 1);
    lists.remove(0)
}

/// The serial as `TlsPeer::serial` shows it.
fn hex(serial: u16) -> String {
    format!("{serial:04X}")
}

/// Procedure 1 echoes; procedure 2 returns the serial of the caller's
/// certificate, as the handler saw it.
async fn service(ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
    match procedure {
        1 => Ok(args),
        2 => Ok(Bytes::from(
            ctx.tls.map(|peer| peer.serial.clone()).unwrap_or_default(),
        )),
        _ => Err(ProcError::ProcUnavail),
    }
}

/// A server "srv" on 127.0.0.1 with `tls`, accepting each (node, source)
/// of `peers`.
fn server(tls: ServerTls, peers: &[(&str, &str)]) -> (RunningServer, Endpoint) {
    let mut table = PeerTable::new();
    for (node, source) in peers {
        table = table.allow(id(node), [source.parse().unwrap()]);
    }
    let options = ServerOptions {
        tls: Some(tls),
        identity: Some(ServerIdentity {
            node: id("srv"),
            cluster: None,
            peers: table,
            mode: IdentityMode::Strict,
        }),
        handshake_timeout: Duration::from_secs(5),
        ..ServerOptions::default()
    };
    start(options, service)
}

/// A client `node` of "srv" at `address`, from `source`, with `tls`.
fn client(address: Endpoint, source: &str, node: &str, tls: Option<ClientTls>) -> Client {
    let options = ClientOptions {
        connect: ConnectOptions {
            sources: Sources::new().with(source.parse::<ScopedIp>().unwrap()),
            connect_timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        },
        identity: Some(ClientIdentity::new(id(node), id("srv"))),
        tls,
        deadline: Duration::from_secs(5),
        breaker_threshold: 100,
        backoff_base: Duration::from_millis(20),
        ..ClientOptions::default()
    };
    Client::new(vec![address], options).unwrap()
}

/// The serial of the certificate the server saw `client` present.
async fn seen_serial(client: &Client) -> String {
    let reply = client.call(PROG, 1, 2, Bytes::new()).await.unwrap();
    String::from_utf8(reply.to_vec()).unwrap()
}

/// Waits (within 5 s) until `client` is no longer connected.
async fn disconnected(client: &Client) {
    let mut state = client.watch_state();
    let gone = state.wait_for(|s| !matches!(s, ConnectionState::Connected { .. }));
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("the connection was not closed")
        .unwrap();
}

fn revoked(serial: u16, cn: &str) -> CertError {
    CertError::Revoked {
        serial: hex(serial),
        cn: Some(cn.into()),
    }
}

#[tokio::test]
async fn renewing_both_sides_under_live_traffic_fails_no_call_and_opens_no_connection() {
    let ca = Authority::new("cluster CA");
    let tls = ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1001));
    let (server, address) = server(tls, &[("a", "127.0.0.2"), ("b", "127.0.0.3")]);
    let tls = ClientTls::new(identity_of(&ca, "a", "127.0.0.2", 0x2001));
    let a = client(address.clone(), "127.0.0.2", "a", Some(tls));
    a.connect().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..4u8 {
        let (a, stop, done) = (a.clone(), stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let args = Bytes::from(vec![worker; 512]);
                match a.call(PROG, 1, 1, args.clone()).await {
                    Ok(reply) if reply == args => {}
                    Ok(_) => failed.push("a wrong reply".to_string()),
                    Err(error) => failed.push(error.to_string()),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failed
        }));
    }
    let wait_for = |n: u64| {
        let done = done.clone();
        async move {
            while done.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    // Renew both sides three times while the calls run.
    for round in 1..=3u16 {
        wait_for(200 * u64::from(round)).await;
        let renewed = identity_of(&ca, "srv", "127.0.0.1", 0x1001 + round);
        server.update_tls(ServerTls::new(renewed)).unwrap();
        let renewed = identity_of(&ca, "a", "127.0.0.2", 0x2001 + round);
        a.update_tls(ClientTls::new(renewed)).unwrap();
    }
    wait_for(1000).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let failed = worker.await.unwrap();
        assert!(failed.is_empty(), "calls failed: {failed:?}");
    }
    // One connection all along, on both sides.
    assert_eq!(server.stats().accepted, 1);
    assert_eq!(server.connections().len(), 1);
    assert_eq!(a.stats().reconnects, 0);
    // The live connection still runs on the material of its handshake.
    assert_eq!(seen_serial(&a).await, hex(0x2001));
    assert_eq!(a.tls_peer().unwrap().serial, hex(0x1001));
    // A new handshake meets the last renewal.
    let tls = ClientTls::new(identity_of(&ca, "b", "127.0.0.3", 0x3001));
    let b = client(address, "127.0.0.3", "b", Some(tls));
    b.connect().await.unwrap();
    assert_eq!(b.tls_peer().unwrap().serial, hex(0x1004));
    server.shutdown().await;
}

#[tokio::test]
async fn new_handshakes_use_the_new_certificate_key_and_cas_on_both_sides() {
    let ca = Authority::new("cluster CA");
    let next = Authority::new("next CA");
    let tls = ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1001));
    let peers = [("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")];
    let (server, address) = server(tls, &peers);
    let a_tls = ClientTls::new(identity_of(&ca, "a", "127.0.0.2", 0x2001));
    let a = client(address.clone(), "127.0.0.2", "a", Some(a_tls));
    assert_eq!(seen_serial(&a).await, hex(0x2001));
    assert_eq!(a.tls_peer().unwrap().serial, hex(0x1001));

    // The server's certificate: a new client meets the new one, the live
    // connection keeps the old.
    let renewed = identity_of(&ca, "srv", "127.0.0.1", 0x1002);
    server.update_tls(ServerTls::new(renewed)).unwrap();
    let b_tls = ClientTls::new(identity_of(&ca, "b", "127.0.0.3", 0x2101));
    let b = client(address.clone(), "127.0.0.3", "b", Some(b_tls));
    b.connect().await.unwrap();
    assert_eq!(b.tls_peer().unwrap().serial, hex(0x1002));
    assert_eq!(seen_serial(&a).await, hex(0x2001));
    assert_eq!(a.tls_peer().unwrap().serial, hex(0x1001));

    // The client's certificate: its live connection keeps the old one; its
    // next connection presents the new one (the server drops it by
    // admission for a moment, to make it reconnect).
    let renewed = identity_of(&ca, "a", "127.0.0.2", 0x2002);
    a.update_tls(ClientTls::new(renewed)).unwrap();
    assert_eq!(seen_serial(&a).await, hex(0x2001));
    let away = Admission {
        reject: vec!["127.0.0.2/32".parse().unwrap()],
        allow: Vec::new(),
    };
    let table = |peers: &[(&str, &str)]| {
        let mut table = PeerTable::new();
        for (node, source) in peers {
            table = table.allow(id(node), [source.parse().unwrap()]);
        }
        ServerIdentity {
            node: id("srv"),
            cluster: None,
            peers: table,
            mode: IdentityMode::Strict,
        }
    };
    server.update(away, Some(table(&peers))).unwrap();
    disconnected(&a).await;
    server
        .update(Admission::default(), Some(table(&peers)))
        .unwrap();
    assert_eq!(seen_serial(&a).await, hex(0x2002));
    assert_eq!(a.tls_peer().unwrap().serial, hex(0x1002));

    // The server's CAs: from now on it trusts only the next CA. The live
    // connections go on; a new client of the old CA is refused, one of
    // the next CA is taken.
    let accepted = server.stats().accepted;
    let renewed = identity_trusting(&ca, "srv", "127.0.0.1", 0x1003, &[&next]);
    server.update_tls(ServerTls::new(renewed)).unwrap();
    let old_ca = ClientTls::new(identity_of(&ca, "c", "127.0.0.4", 0x2201));
    let refused = client(address.clone(), "127.0.0.4", "c", Some(old_ca));
    let error = refused.connect().await.unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Refused {
            alert: TlsAlert::UNKNOWN_CA
        },
        "{error}"
    );
    let next_ca = ClientTls::new(identity_trusting(&next, "c", "127.0.0.4", 0x2202, &[&ca]));
    let taken = client(address, "127.0.0.4", "c", Some(next_ca));
    assert_eq!(seen_serial(&taken).await, hex(0x2202));
    assert_eq!(taken.tls_peer().unwrap().serial, hex(0x1003));
    assert_eq!(seen_serial(&a).await, hex(0x2002));
    assert_eq!(seen_serial(&b).await, hex(0x2101));
    assert_eq!(a.stats().reconnects, 1);
    assert_eq!(b.stats().reconnects, 0);
    // The refused client and the new one: two handshakes, nothing else.
    assert_eq!(server.stats().accepted, accepted + 2);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_material_is_refused_with_a_definite_error_and_the_old_stays() {
    let ca = Authority::new("cluster CA");
    let other = Authority::new("other CA");
    // A second CA with the same name but another key: its CRL claims to be
    // ours and does not verify.
    let impostor = Authority::new("cluster CA");
    let tls = ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1001));
    let (server, address) = server(tls, &[("a", "127.0.0.2"), ("b", "127.0.0.3")]);
    let a_tls = ClientTls::new(identity_of(&ca, "a", "127.0.0.2", 0x2001));
    let a = client(address.clone(), "127.0.0.2", "a", Some(a_tls.clone()));
    a.connect().await.unwrap();

    // A key that does not fit the certificate.
    let (cert, _) = leaf(&ca, "srv", "127.0.0.1", 0x1002);
    let (_, key) = leaf(&ca, "srv", "127.0.0.1", 0x1003);
    let error =
        TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), ca.ca_pem().as_bytes()).unwrap_err();
    assert!(
        matches!(
            &error,
            TlsError::Config(TlsConfigError::KeyMismatch { key, certificate, .. })
                if key == "key PEM" && certificate == "certificate PEM"
        ),
        "{error}"
    );
    assert!(error.to_string().contains("does not fit"), "{error}");

    // CRLs that do not parse, named by their file.
    let dir = TempDir::new("tls-renew");
    let junk = dir.join("junk.crl");
    std::fs::write(&junk, b"\x30\x03\x02\x01\x01").unwrap();
    let error = RevocationList::load(&junk).unwrap_err();
    assert!(
        matches!(&error, TlsError::Config(TlsConfigError::BadCrl { origin, .. }) if origin.ends_with("junk.crl")),
        "{error}"
    );
    assert!(error.to_string().contains("junk.crl"), "{error}");
    let no_crl = dir.join("cert.pem");
    std::fs::write(&no_crl, cert.as_bytes()).unwrap();
    let error = RevocationList::load(&no_crl).unwrap_err();
    assert!(
        matches!(
            &error,
            TlsError::Config(TlsConfigError::Missing {
                part: TlsPart::Crl,
                ..
            })
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("cert.pem") && error.to_string().contains("no X509 CRL"),
        "{error}"
    );
    let missing = dir.join("missing.crl");
    let error = RevocationList::load(&missing).unwrap_err();
    assert!(error.to_string().contains("missing.crl"), "{error}");

    // A CRL of a CA we do not trust, and one whose signature does not
    // verify with our CA's key: refused, naming the file.
    let foreign = dir.join("foreign.crl");
    std::fs::write(&foreign, crl(&other, &[0x2001]).pem().unwrap()).unwrap();
    let foreign = RevocationList::load(&foreign).unwrap();
    let error = identity_of(&ca, "srv", "127.0.0.1", 0x1002)
        .with_crls(foreign)
        .unwrap_err();
    assert!(
        matches!(
            &error,
            TlsError::Config(TlsConfigError::CrlIssuerUnknown { issuer, .. })
                if issuer.contains("other CA")
        ),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("foreign.crl")
            && text.contains("other CA")
            && text.contains("none of the CAs"),
        "{text}"
    );
    let forged = dir.join("forged.crl");
    std::fs::write(&forged, crl(&impostor, &[0x2001]).der()).unwrap();
    let forged = RevocationList::load(&forged).unwrap();
    let error = identity_of(&ca, "srv", "127.0.0.1", 0x1002)
        .with_crls(forged)
        .unwrap_err();
    assert!(
        matches!(
            &error,
            TlsError::Config(TlsConfigError::CrlSignature { origin, .. })
                if origin.ends_with("forged.crl")
        ),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("forged.crl") && text.contains("does not verify"),
        "{text}"
    );
    drop(dir);

    // TLS cannot be switched on while running.
    let (plain, plain_address) = {
        let server = Server::new(ServerOptions::default())
            .serve(&["127.0.0.1:0".parse().unwrap()])
            .unwrap();
        let address = Endpoint::from(server.local_addrs()[0]);
        (server, address)
    };
    let error = plain
        .update_tls(ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1002)))
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Config(peerwire::ConfigError::TlsOff { peer: None })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("without TLS"), "{error}");
    let plain_client = client(plain_address, "127.0.0.2", "a", None);
    let error = plain_client.update_tls(a_tls).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Config(peerwire::ConfigError::TlsOff { peer: Some(peer) })
                if *peer == plain_client.peer().clone()
        ),
        "{error}"
    );
    assert!(error.to_string().contains("without TLS"), "{error}");
    plain.shutdown().await;

    // Nothing changed: a new handshake meets the old certificate and no
    // CRL, and the live connection goes on.
    let b_tls = ClientTls::new(identity_of(&ca, "b", "127.0.0.3", 0x2001));
    let b = client(address, "127.0.0.3", "b", Some(b_tls));
    assert_eq!(seen_serial(&b).await, hex(0x2001));
    assert_eq!(b.tls_peer().unwrap().serial, hex(0x1001));
    assert_eq!(seen_serial(&a).await, hex(0x2001));
    assert_eq!(a.stats().reconnects, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_revoked_client_is_refused_at_the_handshake_with_a_verdict_naming_its_serial() {
    let ca = Authority::new("cluster CA");
    let identity = identity_of(&ca, "srv", "127.0.0.1", 0x1001)
        .with_crls([crl_list(&ca, &[0x2001])])
        .unwrap();
    let (server, address) = server(
        ServerTls::new(identity),
        &[("a", "127.0.0.2"), ("b", "127.0.0.3")],
    );
    let a_tls = ClientTls::new(identity_of(&ca, "a", "127.0.0.2", 0x2001));
    let a = client(address.clone(), "127.0.0.2", "a", Some(a_tls));
    let error = a.connect().await.unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Refused {
            alert: TlsAlert::CERTIFICATE_REVOKED
        },
        "{error}"
    );
    assert!(
        error.to_string().contains("revokes our certificate"),
        "{error}"
    );
    let v = verdict_where(&server, |v| v.reason.is_some()).await;
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(revoked(0x2001, "a")))
    );
    let cert = v.tls.expect("the verdict shows the certificate");
    assert_eq!(
        (cert.cn.as_deref(), cert.serial.as_str()),
        (Some("a"), "2001")
    );
    let text = v.reason.unwrap().to_string();
    assert!(
        text.contains("revoked") && text.contains("2001") && text.contains("\"a\""),
        "{text}"
    );
    assert_eq!(server.stats().calls, 0);
    // Another client of the same CA is taken.
    let b_tls = ClientTls::new(identity_of(&ca, "b", "127.0.0.3", 0x2002));
    let b = client(address, "127.0.0.3", "b", Some(b_tls));
    assert_eq!(seen_serial(&b).await, hex(0x2002));
    server.shutdown().await;
}

#[tokio::test]
async fn a_revoked_server_is_refused_by_the_client_naming_its_serial() {
    let ca = Authority::new("cluster CA");
    let tls = ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1001));
    let (server, address) = server(tls, &[("a", "127.0.0.2")]);
    let identity = identity_of(&ca, "a", "127.0.0.2", 0x2001)
        .with_crls([crl_list(&ca, &[0x1001])])
        .unwrap();
    let a = client(address, "127.0.0.2", "a", Some(ClientTls::new(identity)));
    let error = a.connect().await.unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Certificate(revoked(0x1001, "srv")),
        "{error}"
    );
    assert!(
        error.to_string().contains("1001") && error.to_string().contains("revoked"),
        "{error}"
    );
    assert_eq!(server.stats().calls, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_crl_update_closes_the_live_connection_of_a_revoked_client_and_keeps_the_others() {
    let ca = Authority::new("cluster CA");
    let tls = ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1001));
    let (server, address) = server(tls, &[("a", "127.0.0.2"), ("b", "127.0.0.3")]);
    let a_tls = ClientTls::new(identity_of(&ca, "a", "127.0.0.2", 0x2001));
    let a = client(address.clone(), "127.0.0.2", "a", Some(a_tls));
    let b_tls = ClientTls::new(identity_of(&ca, "b", "127.0.0.3", 0x2002));
    let b = client(address, "127.0.0.3", "b", Some(b_tls));
    assert_eq!(seen_serial(&a).await, hex(0x2001));
    assert_eq!(seen_serial(&b).await, hex(0x2002));
    assert_eq!(server.connections().len(), 2);

    // Same certificate and key, now with a CRL that revokes "a".
    let identity = identity_of(&ca, "srv", "127.0.0.1", 0x1001)
        .with_crls([crl_list(&ca, &[0x2001])])
        .unwrap();
    server.update_tls(ServerTls::new(identity)).unwrap();
    let v = verdict_where(&server, |v| {
        matches!(v.reason, Some(VerdictReason::NoLongerTrusted(_)))
    })
    .await;
    assert_eq!(
        v.reason,
        Some(VerdictReason::NoLongerTrusted(revoked(0x2001, "a")))
    );
    assert_eq!(v.peer, Some(id("a")));
    assert_eq!(v.tls.unwrap().serial, hex(0x2001));
    disconnected(&a).await;
    let left: Vec<_> = server
        .connections()
        .into_iter()
        .map(|c| c.peer.unwrap())
        .collect();
    assert_eq!(left, [id("b")]);

    // "a" comes back and is refused at the handshake as revoked.
    let error = a.connect().await.unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Refused {
            alert: TlsAlert::CERTIFICATE_REVOKED
        },
        "{error}"
    );
    // "b" kept its connection all along.
    assert_eq!(seen_serial(&b).await, hex(0x2002));
    assert_eq!(b.stats().reconnects, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_crl_update_on_the_client_closes_its_connection_to_a_revoked_server_only() {
    let ca = Authority::new("cluster CA");
    let peers = [("a", "127.0.0.2")];
    let (revoked_server, revoked_address) = server(
        ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1001)),
        &peers,
    );
    let (kept_server, kept_address) = server(
        ServerTls::new(identity_of(&ca, "srv", "127.0.0.1", 0x1002)),
        &peers,
    );
    let material = || ClientTls::new(identity_of(&ca, "a", "127.0.0.2", 0x2001));
    let to_revoked = client(revoked_address, "127.0.0.2", "a", Some(material()));
    let to_kept = client(kept_address, "127.0.0.2", "a", Some(material()));
    assert_eq!(seen_serial(&to_revoked).await, hex(0x2001));
    assert_eq!(seen_serial(&to_kept).await, hex(0x2001));

    // Both clients take a CRL that revokes the first server's certificate.
    let crl = crl_list(&ca, &[0x1001]);
    for c in [&to_revoked, &to_kept] {
        let identity = identity_of(&ca, "a", "127.0.0.2", 0x2001)
            .with_crls([crl.clone()])
            .unwrap();
        c.update_tls(ClientTls::new(identity)).unwrap();
    }
    disconnected(&to_revoked).await;
    // The server saw its connection end.
    for _ in 0..500 {
        if revoked_server.connections().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(revoked_server.connections().is_empty());
    // The next call connects again and fails at the handshake, as revoked.
    let error = to_revoked
        .call(PROG, 1, 1, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(
        tls_error(&error),
        TlsError::Certificate(revoked(0x1001, "srv")),
        "{error}"
    );
    // The other kept its connection.
    assert_eq!(seen_serial(&to_kept).await, hex(0x2001));
    assert_eq!(to_kept.stats().reconnects, 0);
    assert_eq!(kept_server.stats().accepted, 1);
    revoked_server.shutdown().await;
    kept_server.shutdown().await;
}

#[tokio::test]
async fn crls_load_from_pem_and_der_and_several_apply_at_once() {
    let ca = Authority::new("cluster CA");
    let second = Authority::new("second CA");
    let dir = TempDir::new("tls-crls");
    // Two CRLs of the first CA (each revoking one client) in one PEM file;
    // one of the second CA in DER.
    let pem = dir.join("cluster.pem");
    let text = format!(
        "{}{}",
        crl(&ca, &[0x2001]).pem().unwrap(),
        crl(&ca, &[0x2002]).pem().unwrap()
    );
    std::fs::write(&pem, text).unwrap();
    let der = dir.join("second.crl");
    std::fs::write(&der, crl(&second, &[0x2003]).der()).unwrap();
    let mut crls = RevocationList::load(&pem).unwrap();
    assert_eq!(crls.len(), 2);
    assert!(crls[1].source().contains("cluster.pem"), "{:?}", crls[1]);
    assert_eq!(crls[1].serials(), [hex(0x2002)]);
    let from_der = RevocationList::load(&der).unwrap();
    assert_eq!(from_der.len(), 1);
    assert_eq!(from_der[0].issuer(), "CN=second CA");
    crls.extend(from_der);
    drop(dir);

    let (cert, key) = leaf(&ca, "srv", "127.0.0.1", 0x1001);
    let roots = format!("{}{}", ca.ca_pem(), second.ca_pem());
    let identity = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), roots.as_bytes())
        .unwrap()
        .with_crls(crls)
        .unwrap();
    let peers = [
        ("a", "127.0.0.2"),
        ("b", "127.0.0.3"),
        ("c", "127.0.0.4"),
        ("d", "127.0.0.5"),
    ];
    let (server, address) = server(ServerTls::new(identity), &peers);
    // a and b: the first CA's two lists; c: the second CA's list.
    let cases = [
        ("a", "127.0.0.2", 0x2001, &ca),
        ("b", "127.0.0.3", 0x2002, &ca),
        ("c", "127.0.0.4", 0x2003, &second),
    ];
    for (node, source, serial, issuer) in cases {
        let tls = ClientTls::new(identity_trusting(issuer, node, source, serial, &[&ca]));
        let c = client(address.clone(), source, node, Some(tls));
        let error = c.connect().await.unwrap_err();
        assert_eq!(
            tls_error(&error),
            TlsError::Refused {
                alert: TlsAlert::CERTIFICATE_REVOKED
            },
            "{node}: {error}"
        );
        let v = verdict_where(&server, |v| {
            v.peer.is_none()
                && v.tls
                    .as_ref()
                    .is_some_and(|t| t.cn.as_deref() == Some(node))
        })
        .await;
        assert_eq!(
            v.reason,
            Some(VerdictReason::Certificate(revoked(serial, node)))
        );
    }
    // d, of the second CA and listed nowhere, is taken.
    let tls = ClientTls::new(identity_trusting(&second, "d", "127.0.0.5", 0x2004, &[&ca]));
    let d = client(address, "127.0.0.5", "d", Some(tls));
    assert_eq!(seen_serial(&d).await, hex(0x2004));
    server.shutdown().await;
}
