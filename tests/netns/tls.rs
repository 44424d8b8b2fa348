//! Mutual TLS between namespace hosts: the certificate, the address the
//! server observed, the peer table and the claimed node ID must agree.
//!
//! Hosts A and C are linked to B, the server, each on a link of its own, so
//! B is multi-homed (192.0.2.1 toward A, 198.51.100.1 toward C) and its
//! certificate names both. A has two addresses on its link (192.0.2.10 and
//! 192.0.2.11) and a link-local one (fe80::a); C has 198.51.100.30 and
//! fe80::c. B has fe80::1 on both of its links: only the scope tells them
//! apart. B's link to C is made first, so B's interface toward A has
//! another index than A's own interface (3 against 2), and a scope in an
//! observed address shows whose interface it is.
//!
//! The server is the crate's `Server` on a thread in B; clients are the
//! crate's `Client` in A or C, except for the certificate-less clients of
//! the third scenario (a rustls client without client auth, and
//! `openssl s_client`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerwire::tls::{
    CertError, ClientTls, ServerCheck, ServerTls, TlsAlert, TlsError, TlsIdentity, TlsMode, TlsPeer,
};
use peerwire::{
    CallContext, Client, ClientIdentity, ClientOptions, ConnectOptions, ConnectionInfo, Endpoint,
    Error, IdentityMode, NodeId, PeerTable, ProcError, RunningServer, ScopedIp, Server,
    ServerIdentity, ServerOptions, Sources, Verdict, VerdictReason,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::STEP;
use crate::support::common::{allowed, id, ip};
use crate::support::netns::{self, Host, link};
use crate::support::pki::{Authority, Leaf};
use crate::support::temp::TempDir;

const PROG: u32 = 0x2000_0071;

/// The scenarios of this module, for `main`'s list.
pub fn scenarios() -> Vec<(&'static str, fn())> {
    vec![
        (
            "tls_right_certificate_from_the_right_address_is_accepted",
            tls_right_certificate_from_the_right_address_is_accepted,
        ),
        (
            "tls_certificate_for_a_presented_from_c_is_refused_as_ip_mismatch",
            tls_certificate_for_a_presented_from_c_is_refused_as_ip_mismatch,
        ),
        (
            "tls_client_without_a_certificate_is_refused",
            tls_client_without_a_certificate_is_refused,
        ),
        (
            "tls_certificate_whose_cn_is_not_the_claimed_id_is_refused",
            tls_certificate_whose_cn_is_not_the_claimed_id_is_refused,
        ),
        (
            "tls_link_local_with_scope_is_accepted",
            tls_link_local_with_scope_is_accepted,
        ),
        (
            "tls_multihomed_certificate_names_only_the_configured_source",
            tls_multihomed_certificate_names_only_the_configured_source,
        ),
    ]
}

/// Procedure 1 answers "<peer node ID> <observed address> <certificate CN>",
/// as the server's handler saw them.
async fn whoami(ctx: CallContext, procedure: u32, _args: Bytes) -> Result<Bytes, ProcError> {
    match procedure {
        1 => {
            let peer = ctx.peer.map(|p| p.to_string()).unwrap_or_default();
            let cn = ctx.tls.and_then(|t| t.cn.clone()).unwrap_or_default();
            Ok(Bytes::from(format!("{peer} {} {cn}", ctx.observed)))
        }
        _ => Err(ProcError::ProcUnavail),
    }
}

/// The three hosts and the cluster's CA.
struct Cluster {
    a: Host,
    b: Host,
    c: Host,
    ca: Authority,
}

impl Cluster {
    fn new() -> Cluster {
        let a = Host::new("tla");
        let b = Host::new("tlb");
        let c = Host::new("tlc");
        // C's link first: B's veth0 faces C (index 2), B's veth1 faces A
        // (index 3), A's veth0 is index 2.
        link(&b, "veth0", &c, "veth0");
        link(&b, "veth1", &a, "veth0");
        b.add_addr("veth1", "192.0.2.1/24");
        b.add_addr("veth0", "198.51.100.1/24");
        b.add_addr("veth1", "fe80::1/64");
        b.add_addr("veth0", "fe80::1/64");
        a.add_addr("veth0", "192.0.2.10/24");
        a.add_addr("veth0", "192.0.2.11/24");
        a.add_addr("veth0", "fe80::a/64");
        c.add_addr("veth0", "198.51.100.30/24");
        c.add_addr("veth0", "fe80::c/64");
        assert_eq!(b.if_index("veth1"), 3, "B's interface toward A");
        assert_eq!(a.if_index("veth0"), 2, "A's interface toward B");
        Cluster {
            a,
            b,
            c,
            ca: Authority::new("peerwire netns CA"),
        }
    }

    fn identity(&self, leaf: &Leaf) -> TlsIdentity {
        TlsIdentity::from_pem(
            leaf.cert_pem.as_bytes(),
            leaf.key_pem.as_bytes(),
            self.ca.ca_pem().as_bytes(),
        )
        .unwrap()
    }

    /// A certificate from the cluster's CA with this CN and these IP SANs.
    fn leaf(&self, cn: &str, ips: &[&str]) -> Leaf {
        let ips: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
        self.ca.issue(cn, &ips)
    }

    /// B's server, node "b", with its certificate (CN b, IP SANs
    /// 192.0.2.1, 198.51.100.1 and fe80::1), listening on `listen`.
    fn server(&self, peers: PeerTable, listen: &str) -> TlsServer {
        let identity = self.identity(&self.leaf("b", &["192.0.2.1", "198.51.100.1", "fe80::1"]));
        TlsServer::start(&self.b, identity, peers, listen)
    }

    /// A client as node `node` with `leaf`, bound to `source` (or the
    /// kernel's choice), expecting node "b" at `dest`. Made in the client's
    /// host (a client needs that host's runtime).
    fn client(&self, leaf: &Leaf, node: &str, source: Option<&str>, dest: &Endpoint) -> Dial {
        let mut connect = ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        };
        if let Some(source) = source {
            connect.sources = Sources::new().with(source.parse::<ScopedIp>().unwrap());
        }
        let options = ClientOptions {
            connect,
            identity: Some(ClientIdentity::new(id(node), id("b"))),
            tls: Some(ClientTls {
                identity: self.identity(leaf),
                mode: TlsMode::Direct,
                server: ServerCheck::DialledIp,
            }),
            deadline: Duration::from_secs(5),
            breaker_threshold: 100,
            ..ClientOptions::default()
        };
        Dial {
            dest: dest.clone(),
            options,
        }
    }
}

/// What a client is made from.
struct Dial {
    dest: Endpoint,
    options: ClientOptions,
}

impl Dial {
    fn client(self) -> Client {
        Client::new(vec![self.dest], self.options).unwrap()
    }
}

/// The crate's server running on a thread in a host. Its handle lives on
/// the test's thread (verdicts and connections are read from there); the
/// host's thread drives it until the handle is dropped.
struct TlsServer {
    running: Option<RunningServer>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsServer {
    fn start(host: &Host, identity: TlsIdentity, peers: PeerTable, listen: &str) -> TlsServer {
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listen: Endpoint = listen.parse().unwrap();
        let thread = host.spawn(move || async move {
            let options = ServerOptions {
                tls: Some(ServerTls {
                    identity,
                    mode: TlsMode::Direct,
                }),
                identity: Some(ServerIdentity {
                    node: id("b"),
                    cluster: None,
                    peers,
                    mode: IdentityMode::Strict,
                }),
                handshake_timeout: Duration::from_secs(5),
                ..ServerOptions::default()
            };
            let running = Server::new(options)
                .service(PROG, 1, whoami)
                .serve(&[listen])
                .unwrap();
            tx.send(running).unwrap();
            // The server's tasks run on this thread's runtime until then.
            let _ = stop_rx.await;
        });
        let running = rx.recv_timeout(STEP).expect("the server did not start");
        TlsServer {
            addr: running.local_addrs()[0],
            running: Some(running),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn handle(&self) -> &RunningServer {
        self.running.as_ref().unwrap()
    }

    /// Waits for a verdict that `pick` chooses, newest first.
    #[track_caller]
    fn verdict(&self, what: &str, pick: impl Fn(&Verdict) -> bool) -> Verdict {
        let start = Instant::now();
        loop {
            if let Some(v) = self.handle().verdicts().into_iter().find(&pick) {
                return v;
            }
            assert!(
                start.elapsed() < STEP,
                "no verdict {what}: {:#?}",
                self.handle().verdicts()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        self.handle().connections()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.running.take();
        netns::stop_and_join(&mut self.stop, &mut self.thread);
    }
}

/// What a client saw of one successful call.
#[derive(Debug)]
struct Seen {
    /// The handler's answer: peer, observed address, certificate CN.
    answer: String,
    /// The server's certificate on the link.
    server_cert: Arc<TlsPeer>,
    /// The server's node ID and its view of our address (HELLO).
    hello_node: NodeId,
    hello_observed: SocketAddr,
    /// The server's connection list while we were connected.
    connections: Vec<ConnectionInfo>,
}

/// Calls `whoami` with `client` from `host`, and reads the server's
/// connection list while the link is up.
fn call(host: &Host, server: &TlsServer, dial: Dial) -> Result<Seen, Error> {
    host.block_on(|| async move {
        let client = dial.client();
        let answer = client.call(PROG, 1, 1, Bytes::new()).await?;
        let hello = client.hello().expect("identity on: HELLO answered");
        Ok(Seen {
            answer: String::from_utf8(answer.to_vec()).unwrap(),
            server_cert: client.tls_peer().expect("a TLS link"),
            hello_node: hello.node,
            hello_observed: hello.observed,
            connections: server.connections(),
        })
    })
}

/// Connects `client` from `host` and returns the connect error.
fn refused(host: &Host, dial: Dial) -> Error {
    host.block_on(|| async move {
        let client = dial.client();
        match client.connect().await {
            Ok(()) => panic!("connected: {:?}", client.hello()),
            Err(e) => e,
        }
    })
}

/// 1. A and C each present their own certificate from their own address:
///    accepted, with the certificate in the verdict, the handler's context
///    and the connection list; each client's `tls_peer()` is B's
///    certificate; B received each on the address of the link it came by.
fn tls_right_certificate_from_the_right_address_is_accepted() {
    let cl = Cluster::new();
    let peers = PeerTable::new()
        .allow(id("a"), [allowed("192.0.2.10")])
        .allow(id("c"), [allowed("198.51.100.30")]);
    let server = cl.server(peers, "0.0.0.0:0");
    for (host, node, source, dest, local) in [
        (&cl.a, "a", "192.0.2.10", "192.0.2.1", "192.0.2.1"),
        (&cl.c, "c", "198.51.100.30", "198.51.100.1", "198.51.100.1"),
    ] {
        let leaf = cl.leaf(node, &[source]);
        let dest = Endpoint::new(dest.parse::<ScopedIp>().unwrap(), server.port());
        let client = cl.client(&leaf, node, Some(source), &dest);
        let seen = call(host, &server, client).unwrap_or_else(|e| panic!("{node}: {e}"));

        // The client's view: B's certificate and B's view of us.
        assert_eq!(seen.server_cert.cn.as_deref(), Some("b"));
        assert_eq!(
            seen.server_cert.ip_sans,
            vec![ip("192.0.2.1"), ip("198.51.100.1"), ip("fe80::1")]
        );
        assert_eq!(seen.server_cert.version, peerwire::tls::TlsVersion::Tls13);
        assert_eq!(seen.hello_node, id("b"));
        assert_eq!(seen.hello_observed.ip(), ip(source), "{node}: HELLO echo");
        // The handler's view.
        let (peer, observed, cn) = {
            let mut words = seen.answer.split(' ');
            (
                words.next().unwrap().to_owned(),
                words.next().unwrap().parse::<SocketAddr>().unwrap(),
                words.next().unwrap().to_owned(),
            )
        };
        assert_eq!(
            (peer.as_str(), cn.as_str()),
            (node, node),
            "{}",
            seen.answer
        );
        assert_eq!(observed, seen.hello_observed, "handler and HELLO agree");
        // The connection list: observed source, B's receiving address, and
        // the certificate.
        let conn = seen
            .connections
            .iter()
            .find(|c| c.peer == Some(id(node)))
            .unwrap_or_else(|| panic!("{node} not listed: {:#?}", seen.connections));
        assert_eq!(conn.observed, observed);
        assert_eq!(conn.local.ip(), ip(local), "{node}: B's receiving address");
        let cert = conn.tls.as_ref().expect("the connection's certificate");
        assert_eq!(cert.cn.as_deref(), Some(node));
        assert_eq!(cert.ip_sans, vec![ip(source)]);
        // The verdict.
        let v = server.verdict(&format!("accepting {node}"), |v| {
            v.accepted && v.peer == Some(id(node))
        });
        assert_eq!(v.reason, None);
        assert_eq!(v.observed, observed);
        let cert = v.tls.expect("the verdict carries the certificate");
        assert_eq!(cert.cn.as_deref(), Some(node));
        assert_eq!(cert.ip_sans, vec![ip(source)]);
        assert_eq!(cert.version, peerwire::tls::TlsVersion::Tls13);
    }
}

/// 2. C holds A's valid certificate and key (CN a, IP SAN 192.0.2.10) and
///    claims to be a, from its own address: refused for the IP mismatch,
///    naming C's real source, A's SAN and A's CN; nothing is called. A,
///    with the same certificate from 192.0.2.10, is accepted by the same
///    server.
fn tls_certificate_for_a_presented_from_c_is_refused_as_ip_mismatch() {
    let cl = Cluster::new();
    let peers = PeerTable::new()
        .allow(id("a"), [allowed("192.0.2.10")])
        .allow(id("c"), [allowed("198.51.100.30")]);
    let server = cl.server(peers, "0.0.0.0:0");
    let a_leaf = cl.leaf("a", &["192.0.2.10"]);

    let dest = Endpoint::new("198.51.100.1".parse::<ScopedIp>().unwrap(), server.port());
    let error = refused(&cl.c, cl.client(&a_leaf, "a", Some("198.51.100.30"), &dest));
    let v = server.verdict("refusing C", |v| v.reason.is_some());
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::IpMismatch {
            observed: ip("198.51.100.30"),
            sans: vec![ip("192.0.2.10")],
            cn: Some("a".into()),
        })),
        "{v:#?}"
    );
    assert_eq!(v.observed.ip(), ip("198.51.100.30"), "C's real source");
    assert!(!v.accepted);
    // Refused right after the TLS handshake, before any HELLO.
    assert_eq!(v.peer, None);
    let cert = v.tls.as_ref().expect("the certificate's facts");
    assert_eq!(cert.cn.as_deref(), Some("a"));
    assert_eq!(cert.ip_sans, vec![ip("192.0.2.10")]);
    let text = v.reason.as_ref().unwrap().to_string();
    for part in ["\"a\"", "192.0.2.10", "198.51.100.30"] {
        assert!(text.contains(part), "{part} missing from {text:?}");
    }
    // The impostor's client is told, definitely: the server refused its
    // certificate with the alert access_denied.
    assert_refused_access_denied(&error);
    assert_eq!(server.handle().stats().calls, 0);

    // The same certificate from A's address is A.
    let dest = Endpoint::new("192.0.2.1".parse::<ScopedIp>().unwrap(), server.port());
    let seen = call(
        &cl.a,
        &server,
        cl.client(&a_leaf, "a", Some("192.0.2.10"), &dest),
    )
    .unwrap();
    assert_eq!(seen.hello_observed.ip(), ip("192.0.2.10"));
    let v = server.verdict("accepting A", |v| v.accepted);
    assert_eq!(v.observed.ip(), ip("192.0.2.10"));
    assert_eq!(v.tls.unwrap().cn.as_deref(), Some("a"));
}

/// 3. From C, a client that verifies B's certificate (CA and IP SAN) but
///    presents none: a rustls client without client auth, then OpenSSL's
///    `s_client`. Both are told `certificate_required` by the alert, and
///    B's verdict is `NoClientCertificate` for C's address, with no
///    certificate facts.
fn tls_client_without_a_certificate_is_refused() {
    let cl = Cluster::new();
    let peers = PeerTable::new().allow(id("c"), [allowed("198.51.100.30")]);
    let server = cl.server(peers, "198.51.100.1:0");
    let ca_pem = cl.ca.ca_pem().to_owned();
    let port = server.port();

    // rustls, bound to C's address.
    let (local, outcome) = cl.c.block_on(|| async move {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("198.51.100.30:0".parse().unwrap()).unwrap();
        let stream = socket
            .connect(SocketAddr::new(ip("198.51.100.1"), port))
            .await
            .unwrap();
        let local = stream.local_addr().unwrap();
        // The handshake verifies B's certificate for the dialled IP.
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::IpAddress(ip("198.51.100.1").into()), stream)
            .await
            .expect("TLS 1.3: our side of the handshake completes");
        // The server's refusal arrives after our Finished.
        let _ = tls.write_all(b"\x80\0\0\x04abcd").await;
        let mut buf = [0u8; 16];
        let outcome = tokio::time::timeout(STEP, tls.read(&mut buf))
            .await
            .expect("the server neither refused nor answered");
        (local, outcome)
    });
    let error = outcome.expect_err("the server answered a client without a certificate");
    assert!(
        error.to_string().contains("CertificateRequired"),
        "rustls client's error: {error}"
    );
    let v = server.verdict("refusing the rustls client", |v| v.reason.is_some());
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::NoClientCertificate))
    );
    assert_eq!(v.observed, local, "the server observed the client's socket");
    assert_eq!(v.observed.ip(), ip("198.51.100.30"));
    assert_eq!((v.peer.as_ref(), v.tls.as_ref()), (None, None));
    assert_eq!(v.count, 1);

    // OpenSSL's client, in C (its only address on the link is the source).
    let dir = TempDir::new("netns-tls-noclientcert");
    let ca_file = cl.ca.write_ca(&dir.join("ca.pem")).unwrap();
    let output =
        cl.c.command("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("198.51.100.1:{port}"))
            .arg("-CAfile")
            .arg(&ca_file)
            .args(["-verify_ip", "198.51.100.1", "-verify_return_error"])
            // Read until the server closes, though stdin is empty.
            .arg("-ign_eof")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl s_client in C (Debian package openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("Verify return code: 0 (ok)") && text.contains("TLSv1.3"),
        "s_client did not verify B's certificate over TLS 1.3:\n{text}"
    );
    assert!(
        text.contains("alert certificate required"),
        "s_client was not told a certificate is required:\n{text}"
    );
    let v = server.verdict("refusing s_client", |v| v.count == 2);
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::NoClientCertificate))
    );
    assert_eq!(v.observed.ip(), ip("198.51.100.30"));
    assert_eq!(server.handle().stats().calls, 0);
}

/// 4. C presents a valid certificate for its own address, but with CN "a",
///    and claims "c" (which the peer table allows from C's address): the
///    HELLO is refused for the CN, and the verdict says which CN and which
///    claim.
fn tls_certificate_whose_cn_is_not_the_claimed_id_is_refused() {
    let cl = Cluster::new();
    let peers = PeerTable::new()
        .allow(id("a"), [allowed("192.0.2.10")])
        .allow(id("c"), [allowed("198.51.100.30")]);
    let server = cl.server(peers, "198.51.100.1:0");
    let leaf = cl.leaf("a", &["198.51.100.30"]);
    let dest = Endpoint::new("198.51.100.1".parse::<ScopedIp>().unwrap(), server.port());
    let error = refused(&cl.c, cl.client(&leaf, "c", Some("198.51.100.30"), &dest));
    match &error {
        Error::Unreachable { error, .. } => assert!(
            matches!(**error, Error::IdentityRefused { .. }),
            "C's connect error: {error:?}"
        ),
        other => panic!("C's error: {other:?}"),
    }
    let v = server.verdict("refusing C", |v| v.reason.is_some());
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::CnMismatch {
            expected: "c".into(),
            cn: Some("a".into()),
        })),
        "{v:#?}"
    );
    assert_eq!(v.peer, Some(id("c")), "the claim came in HELLO");
    assert_eq!(v.observed.ip(), ip("198.51.100.30"));
    let cert = v.tls.expect("the certificate's facts");
    assert_eq!(cert.cn.as_deref(), Some("a"));
    assert_eq!(cert.ip_sans, vec![ip("198.51.100.30")]);
    assert_eq!(server.handle().stats().calls, 0);
}

/// 5. A binds `fe80::a%veth0`, dials `fe80::1%veth0` (B's interface toward
///    A; B has fe80::1 on both links). B's certificate names fe80::1, A's
///    names fe80::a: accepted, and B observed A's link-local address with
///    the scope of its own receiving interface (veth1, index 3), which is
///    what the peer table names.
fn tls_link_local_with_scope_is_accepted() {
    let cl = Cluster::new();
    let peers = PeerTable::new().allow(id("a"), [allowed("fe80::a%veth1")]);
    let server = cl.server(peers, "[::]:0");
    let leaf = cl.leaf("a", &["fe80::a"]);
    let dest: Endpoint = format!("[fe80::1%veth0]:{}", server.port())
        .parse()
        .unwrap();
    let seen = call(
        &cl.a,
        &server,
        cl.client(&leaf, "a", Some("fe80::a%veth0"), &dest),
    )
    .unwrap();
    let scope = cl.b.if_index("veth1");
    let observed: SocketAddr = format!("[fe80::a%{scope}]:{}", seen.hello_observed.port())
        .parse()
        .unwrap();
    assert_eq!(seen.hello_observed, observed, "HELLO echo");
    assert_eq!(seen.server_cert.cn.as_deref(), Some("b"));
    assert!(seen.server_cert.ip_sans.contains(&ip("fe80::1")));
    assert!(
        seen.answer.starts_with(&format!("a {observed} a")),
        "{}",
        seen.answer
    );
    let conn = &seen.connections[0];
    assert_eq!(conn.observed, observed);
    let want_local: SocketAddr = format!("[fe80::1%{scope}]:{}", server.port())
        .parse()
        .unwrap();
    assert_eq!(conn.local, want_local, "B received on veth1");
    let v = server.verdict("accepting A", |v| v.accepted);
    assert_eq!(v.observed, observed);
    assert_eq!(v.peer, Some(id("a")));
    let cert = v.tls.expect("the certificate");
    assert_eq!(
        (cert.cn.as_deref(), cert.ip_sans.clone()),
        (Some("a"), vec![ip("fe80::a")])
    );
}

/// 6. A has 192.0.2.10 and 192.0.2.11; its certificate names only the one
///    the kernel would *not* pick, its configured source. The peer table
///    allows both, so only the certificate rule can tell them apart.
///    Bound to the configured source: accepted, observed as that source.
///    Unbound, with the same certificate: refused for the IP mismatch,
///    naming the kernel's pick. So the check uses the source observed.
fn tls_multihomed_certificate_names_only_the_configured_source() {
    let cl = Cluster::new();
    let picked = cl.a.kernel_source("192.0.2.1");
    let configured = ["192.0.2.10", "192.0.2.11"]
        .into_iter()
        .find(|s| *s != picked)
        .unwrap();
    assert!(
        ["192.0.2.10", "192.0.2.11"].contains(&picked.as_str()),
        "the kernel picked {picked}"
    );
    let peers = PeerTable::new().allow(id("a"), [allowed("192.0.2.10"), allowed("192.0.2.11")]);
    let server = cl.server(peers, "192.0.2.1:0");
    let leaf = cl.leaf("a", &[configured]);
    let dest = Endpoint::new("192.0.2.1".parse::<ScopedIp>().unwrap(), server.port());

    let seen = call(
        &cl.a,
        &server,
        cl.client(&leaf, "a", Some(configured), &dest),
    )
    .unwrap();
    assert_eq!(seen.hello_observed.ip(), ip(configured));
    let v = server.verdict("accepting A", |v| v.accepted);
    assert_eq!(v.observed.ip(), ip(configured));
    assert_eq!(v.tls.unwrap().ip_sans, vec![ip(configured)]);

    let error = refused(&cl.a, cl.client(&leaf, "a", None, &dest));
    let v = server.verdict("refusing unbound A", |v| v.reason.is_some());
    assert_eq!(
        v.reason,
        Some(VerdictReason::Certificate(CertError::IpMismatch {
            observed: ip(&picked),
            sans: vec![ip(configured)],
            cn: Some("a".into()),
        })),
        "{v:#?}"
    );
    assert_eq!(v.observed.ip(), ip(&picked));
    assert_refused_access_denied(&error);
}

/// The client's connect error says the server refused our certificate with
/// the TLS alert `access_denied` (the address rule runs in the handshake).
fn assert_refused_access_denied(error: &Error) {
    let Error::Unreachable { error: cause, .. } = error else {
        panic!("expected Unreachable, got {error:?}");
    };
    match &**cause {
        Error::Tls { error: tls, .. } => assert!(
            matches!(**tls, TlsError::Refused { alert } if alert == TlsAlert::ACCESS_DENIED),
            "the TLS error: {tls:?}"
        ),
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}
