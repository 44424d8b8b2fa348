//! Exact under races: a policy update holds for every connection once it
//! returns, whatever the connection was doing (accepted a moment before,
//! not yet running); two updates from two threads both hold.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

use std::net::SocketAddr;
use std::time::Duration;

use peerwire::{Admission, RunningServer, Server, ServerOptions};
use support::common::{PROG, echo, null_answered};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn serve(options: ServerOptions) -> (RunningServer, SocketAddr) {
    let server = Server::new(options)
        .service(PROG, 1, echo)
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let address = server.local_addrs()[0];
    (server, address)
}

/// Every loopback address: what the update below refuses.
fn refuse_loopback() -> Admission {
    Admission {
        reject: vec!["127.0.0.0/8".parse().unwrap()],
        allow: Vec::new(),
    }
}

/// Spins (without yielding) until the server has accepted `n` more
/// connections than `base`, so that the update lands while the accept
/// loop is busy with the others.
fn wait_accepted(server: &RunningServer, base: u64, n: u64) {
    let start = std::time::Instant::now();
    while server.stats().accepted < base + n && start.elapsed() < Duration::from_secs(10) {
        std::hint::spin_loop();
    }
}

/// Rounds of: `PER_ROUND` connections made by `connect` while the server
/// accepts them, and, once it has accepted half of them, `refuse` (an
/// update that no longer admits them); then a NULL call on each. Returns
/// the rounds in which some connection answered it, with how many did.
async fn race_rounds<S, C, F>(
    server: &RunningServer,
    connect: C,
    admit: impl Fn(),
    refuse: impl Fn(),
) -> Vec<(usize, usize)>
where
    S: AsyncReadExt + AsyncWriteExt + Unpin + Send + 'static,
    C: Fn() -> F,
    F: Future<Output = std::io::Result<S>> + Send + 'static,
{
    const ROUNDS: usize = 50;
    const PER_ROUND: usize = 24;
    let mut leaks = Vec::new();
    for round in 0..ROUNDS {
        admit();
        let base = server.stats().accepted;
        let connects: Vec<_> = (0..PER_ROUND).map(|_| tokio::spawn(connect())).collect();
        wait_accepted(server, base, (PER_ROUND / 2) as u64);
        refuse();
        let mut leaked = 0;
        for connect in connects {
            let mut stream = connect.await.unwrap().unwrap();
            if null_answered(&mut stream).await {
                leaked += 1;
            }
        }
        if leaked > 0 {
            leaks.push((round, leaked));
        }
    }
    leaks
}

/// Connections accepted concurrently with an update that refuses their
/// address: once `update` returns, none of them answers a call, whether
/// its task was already running, just spawned, or not yet accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_is_served_under_the_old_lists_once_update_returns() {
    let (server, address) = serve(ServerOptions::default());
    let leaks = race_rounds(
        &server,
        || TcpStream::connect(address),
        || server.update(Admission::default(), None).unwrap(),
        || server.update(refuse_loopback(), None).unwrap(),
    )
    .await;
    assert!(
        leaks.is_empty(),
        "(round, connections answered after update returned): {leaks:?}"
    );
    server.shutdown().await;
}

/// The same on a Unix socket, with `update_unix_admission` refusing our
/// user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_unix_connection_is_served_under_the_old_lists_once_update_returns() {
    use peerwire::{Address, UnixAdmission};
    let path = unix_path();
    let server = Server::new(ServerOptions::default())
        .service(PROG, 1, echo)
        .serve_on(&[Address::Unix(path.clone())])
        .unwrap();
    let uid = nix::unistd::getuid().as_raw();
    let leaks = race_rounds(
        &server,
        || tokio::net::UnixStream::connect(path.clone()),
        || server.update_unix_admission(UnixAdmission::default()),
        || {
            server.update_unix_admission(UnixAdmission {
                reject_uids: vec![uid],
                ..UnixAdmission::default()
            })
        },
    )
    .await;
    assert!(
        leaks.is_empty(),
        "(round, connections answered after update_unix_admission returned): {leaks:?}"
    );
    server.shutdown().await;
}

/// A Unix socket path of its own (pid plus a random part) in the temporary
/// directory; the file is removed when the server stops listening.
fn unix_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "peerwire-races-{}-{:016x}.socket",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// `update` and `update_unix_admission` from two threads at once: both
/// hold afterwards (neither overwrites the other with the lists it read
/// before the other wrote).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_both_lists_are_both_kept() {
    use peerwire::{Address, UnixAdmission};
    const ROUNDS: usize = 2000;
    let path = unix_path();
    let server = Server::new(ServerOptions::default())
        .service(PROG, 1, echo)
        .serve_on(&[
            Address::Inet("127.0.0.1:0".parse().unwrap()),
            Address::Unix(path.clone()),
        ])
        .unwrap();
    let address = server.local_addrs()[0];
    let uid = nix::unistd::getuid().as_raw();
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        server.update(Admission::default(), None).unwrap();
        server.update_unix_admission(UnixAdmission::default());
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                barrier.wait();
                server.update(refuse_loopback(), None).unwrap();
            });
            scope.spawn(|| {
                barrier.wait();
                server.update_unix_admission(UnixAdmission {
                    reject_uids: vec![uid],
                    ..UnixAdmission::default()
                });
            });
        });
        let mut tcp = TcpStream::connect(address).await.unwrap();
        let mut unix = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (tcp, unix) = (
            null_answered(&mut tcp).await,
            null_answered(&mut unix).await,
        );
        if tcp || unix {
            lost.push((round, if tcp { "address" } else { "unix" }));
        }
    }
    assert!(lost.is_empty(), "(round, update lost): {lost:?}");
    server.shutdown().await;
}
