//! How TLS connections end: new certificate lists while handshakes are in
//! flight, and fatal alerts after a call was run or answered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peerwire::tls::{ServerTls, TlsAlert, TlsMode};
use peerwire::{
    CallContext, DisconnectCause, Endpoint, Error, IdentityMode, PeerTable, ProcError,
    RunningServer, Server, ServerIdentity, ServerOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{client_tls, identity_of, new_client, raw_client_config, server};
use crate::support::common::{PROG, eventually, id, ip, null_answered};
use crate::support::pki::Authority;

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
            identity: identity_of(ca, Some("srv"), &["127.0.0.1"]),
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
    eventually("the first call ran", || {
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
    eventually("the answer reached the proxy", || {
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
