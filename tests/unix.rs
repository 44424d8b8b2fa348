//! Unix stream sockets: the same RPC over a path, the peer known by its
//! credentials, and a socket file that is placed with its mode, replaces a
//! stale file, never steals a live one and goes away with the server.
//!
//! Every test works in a fresh directory under the system's temporary
//! directory, named from the pid and a random part.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/temp.rs"]
    pub mod temp;
}

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use peerwire::{
    Address, CallContext, Client, ClientIdentity, ClientOptions, Error, IdentityMode,
    ListenOptions, NodeId, PeerCredentials, PeerTable, ProcError, RunningServer, Server,
    ServerIdentity, ServerOptions, UnixAdmission, UnixHolder, VerdictReason,
};
use support::common::{GENEROUS, PROG, eventually};
use support::temp::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Procedure 1 echoes; procedure 2 answers the caller's credentials as
/// uid, gid, pid (big-endian u32 each; pid 0 when unknown), and 1 when the
/// context had a node ID, 0 when not.
async fn service(ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
    match procedure {
        1 => Ok(args),
        2 => {
            let c = ctx.credentials.ok_or(ProcError::SystemErr)?;
            let mut out = Vec::new();
            for word in [
                c.uid,
                c.gid,
                c.pid.unwrap_or(0) as u32,
                u32::from(ctx.peer.is_some()),
            ] {
                out.extend_from_slice(&word.to_be_bytes());
            }
            Ok(Bytes::from(out))
        }
        _ => Err(ProcError::ProcUnavail),
    }
}

fn serve_at(path: &Path, options: ServerOptions) -> Result<RunningServer, Error> {
    Server::new(options)
        .service(PROG, 1, service)
        .serve_on(&[Address::unix(path).unwrap()])
}

fn quick_client(path: &Path) -> Client {
    Client::unix(
        path,
        ClientOptions {
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            breaker_threshold: 100,
            deadline: GENEROUS,
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

async fn echo(client: &Client, text: &'static [u8]) -> Result<Bytes, Error> {
    timeout(GENEROUS, client.call(PROG, 1, 1, Bytes::from_static(text)))
        .await
        .expect("the call finishes within its deadline")
}

fn ours() -> (u32, u32, i32) {
    (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
        std::process::id() as i32,
    )
}

#[tokio::test]
async fn a_call_round_trips_over_a_unix_socket() {
    let dir = TempDir::new("unix");
    let path = dir.join("rt.socket");
    let server = serve_at(&path, ServerOptions::default()).unwrap();
    assert_eq!(server.unix_paths(), vec![path.clone()]);
    assert!(
        server.local_addrs().is_empty(),
        "no TCP listener was asked for"
    );

    let client = quick_client(&path);
    assert_eq!(
        client.peer().to_string(),
        format!("unix:{}", path.display())
    );
    let reply = echo(&client, b"over a path").await.unwrap();
    assert_eq!(&reply[..], b"over a path");
    // Many in flight at once, matched by XID as on TCP.
    let calls: Vec<_> = (0..32u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let args = Bytes::from(i.to_be_bytes().to_vec());
                (i, client.call(PROG, 1, 1, args).await.unwrap())
            })
        })
        .collect();
    for call in calls {
        let (i, reply) = call.await.unwrap();
        assert_eq!(&reply[..], &i.to_be_bytes());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_handler_sees_our_own_credentials() {
    let dir = TempDir::new("unix");
    let path = dir.join("cred.socket");
    let server = serve_at(&path, ServerOptions::default()).unwrap();
    let client = quick_client(&path);
    let reply = timeout(GENEROUS, client.call(PROG, 1, 2, Bytes::new()))
        .await
        .unwrap()
        .unwrap();
    let word = |i: usize| u32::from_be_bytes(reply[i * 4..i * 4 + 4].try_into().unwrap());
    let (uid, gid, pid) = ours();
    assert_eq!((word(0), word(1), word(2) as i32), (uid, gid, pid));
    assert_eq!(word(3), 0, "no node ID on a Unix connection");

    // The connection list and the verdict carry them too.
    let connections = server.connections();
    assert_eq!(connections.len(), 1, "{connections:?}");
    let expected = PeerCredentials {
        uid,
        gid,
        pid: Some(pid),
    };
    assert_eq!(connections[0].credentials, Some(expected));
    let verdicts = server.verdicts();
    assert!(verdicts[0].accepted);
    assert_eq!(verdicts[0].credentials, Some(expected));
    server.shutdown().await;
}

/// Admission by user ID: an allow list without our uid (0 when the tests
/// run as root) refuses us, closed unread, with a verdict naming our
/// credentials; one with it admits us.
#[tokio::test]
async fn admission_by_uid_refuses_and_admits() {
    let dir = TempDir::new("unix");
    let path = dir.join("adm.socket");
    let (uid, gid, pid) = ours();
    let server = serve_at(
        &path,
        ServerOptions {
            unix_admission: UnixAdmission::users([uid.wrapping_add(1)]),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let mut raw = tokio::net::UnixStream::connect(&path).await.unwrap();
    // A whole NULL call; the server reads none of it and closes.
    let _ = raw.write_all(&null_call(PROG)).await;
    let mut buf = [0u8; 64];
    let read = timeout(GENEROUS, raw.read(&mut buf)).await.unwrap();
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "refused connection must be closed unanswered, got {read:?}"
    );
    let verdicts = server.verdicts();
    let verdict = &verdicts[0];
    assert!(!verdict.accepted);
    assert_eq!(
        verdict.reason,
        Some(VerdictReason::CredentialsNotAdmitted { uid, gid })
    );
    assert_eq!(
        verdict.credentials,
        Some(PeerCredentials {
            uid,
            gid,
            pid: Some(pid)
        })
    );
    let text = verdict.reason.as_ref().unwrap().to_string();
    assert!(text.contains(&format!("uid {uid} gid {gid}")), "{text}");
    assert_eq!(server.stats().refused, 1);
    assert_eq!(server.stats().calls, 0);

    // A client is refused the same way: its call fails.
    let client = quick_client(&path);
    let result = timeout(
        GENEROUS,
        client.call_with(
            PROG,
            1,
            1,
            Bytes::new(),
            &peerwire::CallOptions {
                deadline: Some(Duration::from_millis(500)),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    assert!(result.is_err(), "{result:?}");
    server.shutdown().await;

    let server = serve_at(
        &path,
        ServerOptions {
            unix_admission: UnixAdmission::users([uid]),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let client = quick_client(&path);
    assert_eq!(&echo(&client, b"in").await.unwrap()[..], b"in");
    assert_eq!(server.stats().refused, 0);
    server.shutdown().await;
}

/// A policy change closes an open connection whose credentials are no
/// longer admitted.
#[tokio::test]
async fn an_admission_update_closes_connections_no_longer_admitted() {
    let dir = TempDir::new("unix");
    let path = dir.join("upd.socket");
    let (uid, _, _) = ours();
    let server = serve_at(&path, ServerOptions::default()).unwrap();
    let client = quick_client(&path);
    echo(&client, b"before").await.unwrap();
    assert_eq!(server.connections().len(), 1);
    server.update_unix_admission(UnixAdmission {
        reject_uids: vec![uid],
        ..UnixAdmission::default()
    });
    eventually("the refused connection closed", || {
        server.connections().is_empty()
    })
    .await;
    assert_eq!(
        server.verdicts()[0].reason,
        Some(VerdictReason::NoLongerAllowed(None))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_socket_file_has_the_configured_mode() {
    let dir = TempDir::new("unix");
    for (name, mode) in [("default.socket", None), ("group.socket", Some(0o660))] {
        let path = dir.join(name);
        let mut options = ServerOptions::default();
        if let Some(mode) = mode {
            options.listen.unix_mode = mode;
        }
        let server = serve_at(&path, options).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            mode.unwrap_or(0o600),
            "{name}"
        );
        server.shutdown().await;
    }
    let bad = ListenOptions {
        unix_mode: 0o10000,
        ..ListenOptions::default()
    };
    let err = peerwire::listen_unix(&dir.join("bad.socket"), &bad).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config(peerwire::ConfigError::UnixMode { mode: 0o10000 })
        ),
        "{err:?}"
    );
}

/// A socket file nothing listens on (its server died) is replaced, and
/// no temporary name is left behind.
#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("unix");
    let path = dir.join("stale.socket");
    // std's listener leaves its file behind when dropped: a stale socket.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());

    let server = serve_at(&path, ServerOptions::default()).unwrap();
    let client = quick_client(&path);
    assert_eq!(&echo(&client, b"fresh").await.unwrap()[..], b"fresh");
    assert_eq!(dir.names(), vec!["stale.socket", "stale.socket.lock"]);
    server.shutdown().await;
}

/// A live socket of another program (no lock of ours) is an error naming
/// the path, and that program keeps its socket.
#[tokio::test]
async fn a_live_foreign_socket_is_never_stolen() {
    let dir = TempDir::new("unix");
    let path = dir.join("live.socket");
    let foreign = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let err = serve_at(&path, ServerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::UnixInUse { path: p, holder: UnixHolder::LiveServer } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    // Still the foreign server's socket: it accepts a new connection.
    let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    foreign.set_nonblocking(false).unwrap();
    foreign.accept().unwrap();
    assert_eq!(dir.names(), vec!["live.socket"], "no leftovers");
}

/// A second peerwire server on a path a first one serves is refused (the
/// first holds the lock), and the first keeps serving.
#[tokio::test]
async fn a_live_peerwire_server_keeps_its_path() {
    let dir = TempDir::new("unix");
    let path = dir.join("mine.socket");
    let first = serve_at(&path, ServerOptions::default()).unwrap();
    let err = serve_at(&path, ServerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::UnixInUse { path: p, holder: UnixHolder::Locked } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    let client = quick_client(&path);
    assert_eq!(&echo(&client, b"still").await.unwrap()[..], b"still");
    assert_eq!(first.stats().accepted, 1);
    first.shutdown().await;
}

/// Without our lock file, a live peerwire server is still found by the
/// probe: the lock only guards the window between probe and rename.
#[tokio::test]
async fn a_live_server_is_found_by_the_probe_without_its_lock() {
    let dir = TempDir::new("unix");
    let path = dir.join("probe.socket");
    let first = serve_at(&path, ServerOptions::default()).unwrap();
    std::fs::remove_file(dir.join("probe.socket.lock")).unwrap();
    let err = serve_at(&path, ServerOptions::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::UnixInUse {
                holder: UnixHolder::LiveServer,
                ..
            }
        ),
        "{err:?}"
    );
    let client = quick_client(&path);
    assert_eq!(&echo(&client, b"kept").await.unwrap()[..], b"kept");
    first.shutdown().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = TempDir::new("unix");
    let path = dir.join("data.socket");
    std::fs::write(&path, b"precious").unwrap();
    let err = serve_at(&path, ServerOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnixInUse {
                holder: UnixHolder::NotASocket,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    assert_eq!(dir.names(), vec!["data.socket"], "no leftovers");
}

#[tokio::test]
async fn the_socket_file_is_removed_at_shutdown() {
    let dir = TempDir::new("unix");
    let path = dir.join("bye.socket");
    let server = serve_at(&path, ServerOptions::default()).unwrap();
    assert!(path.exists());
    server.shutdown().await;
    assert!(dir.names().is_empty(), "left: {:?}", dir.names());

    // Stopping one listener removes its file too; the path can be served
    // again at once.
    let mut server = serve_at(&path, ServerOptions::default()).unwrap();
    assert!(server.stop_listening_unix(&path));
    eventually("the stopped listener's file removed", || !path.exists()).await;
    server.shutdown().await;
}

/// A file another server put at the path since is not ours to remove.
#[tokio::test]
async fn shutdown_leaves_a_file_that_is_no_longer_ours() {
    let dir = TempDir::new("unix");
    let path = dir.join("moved.socket");
    let server = serve_at(&path, ServerOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    server.shutdown().await;
    assert!(path.exists(), "the other server's file was removed");
    drop(other);
}

#[tokio::test]
async fn the_server_survives_garbage_bytes() {
    let dir = TempDir::new("unix");
    let path = dir.join("junk.socket");
    let server = serve_at(&path, ServerOptions::default()).unwrap();
    let mut buf = [0u8; 256];

    // A record header promising 2 GiB, then noise: over the limit, so the
    // server closes that connection without reserving the memory.
    let mut raw = tokio::net::UnixStream::connect(&path).await.unwrap();
    raw.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let read = timeout(GENEROUS, raw.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}");

    // A whole record that is not an RPC message is dropped unanswered; a
    // NULL call after it on the same connection is answered.
    let mut raw = tokio::net::UnixStream::connect(&path).await.unwrap();
    raw.write_all(&[0x80, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef])
        .await
        .unwrap();
    raw.write_all(&null_call(PROG)).await.unwrap();
    let read = timeout(GENEROUS, raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(read >= 28, "a reply record, got {read} bytes");
    assert_eq!(&buf[4..8], &0x1234_5678u32.to_be_bytes(), "the NULL's XID");
    assert_eq!(server.stats().dropped, 1);

    let client = quick_client(&path);
    assert_eq!(&echo(&client, b"fine").await.unwrap()[..], b"fine");
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_reconnects_after_the_server_restarts() {
    let dir = TempDir::new("unix");
    let path = dir.join("again.socket");
    let server = serve_at(&path, ServerOptions::default()).unwrap();
    let client = quick_client(&path);
    assert_eq!(&echo(&client, b"one").await.unwrap()[..], b"one");
    server.shutdown().await;
    let failed = echo(&client, b"none").await;
    assert!(failed.is_err(), "{failed:?}");

    let server = serve_at(&path, ServerOptions::default()).unwrap();
    assert_eq!(&echo(&client, b"two").await.unwrap()[..], b"two");
    assert!(client.stats().reconnects >= 1, "{:?}", client.stats());
    server.shutdown().await;
}

#[tokio::test]
async fn connect_errors_name_the_path() {
    let dir = TempDir::new("unix");
    let path = dir.join("absent.socket");
    let client = quick_client(&path);
    let result = timeout(GENEROUS, client.connect()).await.unwrap();
    let Err(Error::Unreachable { error, peer }) = result else {
        panic!("expected Unreachable, got {result:?}");
    };
    assert_eq!(peer.as_unix(), Some(path.as_path()));
    assert!(
        matches!(&*error, Error::UnixConnect { path: p, .. } if *p == path),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("no socket file there"), "{text}");
}

/// A Unix client has no address for a HELLO to bind: identity is a
/// configuration error. A server with an identity does not gate Unix
/// connections with HELLO; they are known by their credentials.
#[tokio::test]
async fn hello_does_not_apply_on_unix_sockets() {
    let dir = TempDir::new("unix");
    let path = dir.join("hello.socket");
    let id = |s: &str| s.parse::<NodeId>().unwrap();
    let err = Client::unix(
        &path,
        ClientOptions {
            identity: Some(ClientIdentity::new(id("a"), id("b"))),
            ..ClientOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config(peerwire::ConfigError::IdentityOverUnix { .. })
        ),
        "{err:?}"
    );

    let server = serve_at(
        &path,
        ServerOptions {
            identity: Some(ServerIdentity {
                node: id("srv"),
                cluster: None,
                peers: PeerTable::new(),
                mode: IdentityMode::Strict,
            }),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let client = quick_client(&path);
    let reply = timeout(GENEROUS, client.call(PROG, 1, 2, Bytes::new()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.len(), 16, "the handler saw credentials");
    assert_eq!(&reply[12..16], &[0, 0, 0, 0], "and no node ID");
    server.shutdown().await;
}

/// One server on TCP and a Unix path at once.
#[tokio::test]
async fn one_server_serves_tcp_and_unix_together() {
    let dir = TempDir::new("unix");
    let path = dir.join("both.socket");
    let server = Server::new(ServerOptions::default())
        .service(PROG, 1, service)
        .serve_on(&[
            "127.0.0.1:0".parse().unwrap(),
            format!("unix:{}", path.display()).parse().unwrap(),
        ])
        .unwrap();
    let tcp =
        Client::for_address(server.local_addrs()[0].into(), ClientOptions::default()).unwrap();
    let unix =
        Client::for_address(Address::unix(&path).unwrap(), ClientOptions::default()).unwrap();
    assert_eq!(&echo(&tcp, b"tcp").await.unwrap()[..], b"tcp");
    assert_eq!(&echo(&unix, b"unix").await.unwrap()[..], b"unix");
    // TCP calls carry no credentials.
    let result = timeout(GENEROUS, tcp.call(PROG, 1, 2, Bytes::new()))
        .await
        .unwrap();
    assert!(result.is_err(), "{result:?}");
    server.shutdown().await;
}

/// A NULL call to `program` v1, record-marked.
fn null_call(program: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for word in [0x1234_5678u32, 0, 2, program, 1, 0, 0, 0, 0, 0] {
        body.extend_from_slice(&word.to_be_bytes());
    }
    let mut out = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}
