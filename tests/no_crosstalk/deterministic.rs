//! Deterministic tests over one duplex connection: late replies, dropped
//! callers, reserved XIDs and their slots, and pings.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::RpcCodec;
use peerwire::proto::{CallHeader, MessageBody};
use peerwire::{Client, ClientOptions, DisconnectCause, Error, Link};
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{PROC, VERS, is_ping, local, paused_runtime, peer, remote, success, token_bytes};
use crate::support::common::{PROG, ms, quiet_client_options, within};

/// The server's end of a client's one and only connection.
struct Peer {
    reader: FramedRead<ReadHalf<DuplexStream>, RpcCodec>,
    writer: FramedWrite<WriteHalf<DuplexStream>, RpcCodec>,
}

impl Peer {
    /// The next call: XID, header and arguments.
    async fn next_call(&mut self) -> (u32, CallHeader, Bytes) {
        let message = self
            .reader
            .next()
            .await
            .expect("the client closed")
            .expect("a bad record")
            .expect("a malformed message");
        match message.body {
            MessageBody::Call { header, args } => (message.xid, header, args),
            MessageBody::Reply { .. } => panic!("a reply from the client"),
        }
    }

    /// The next call that is not a ping, answering pings on the way.
    async fn next_real_call(&mut self) -> (u32, Bytes) {
        loop {
            let (xid, header, args) = self.next_call().await;
            if is_ping(&header) {
                self.reply(xid, Bytes::new()).await;
            } else {
                return (xid, args);
            }
        }
    }

    async fn reply(&mut self, xid: u32, results: Bytes) {
        self.writer.send(success(xid, results)).await.unwrap();
    }
}

/// A call of `token` with `deadline`, on a task of its own, for a test
/// that answers it (or not) meanwhile.
fn spawn_call(
    client: &Client,
    token: u64,
    deadline: Duration,
) -> tokio::task::JoinHandle<Result<Bytes, Error>> {
    let client = client.clone();
    tokio::spawn(async move {
        client
            .call_with(PROG, VERS, PROC, token_bytes(token), &within(deadline))
            .await
    })
}

/// A client whose first connection is a duplex to the returned [`Peer`];
/// any further connect fails.
fn connect_once(options: ClientOptions) -> (Client, Peer) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let ours = Mutex::new(Some(ours));
    let client = Client::with_transport(peer(), options, move || {
        let io = ours.lock().unwrap().take();
        async move {
            match io {
                Some(io) => Ok(Link::new(io, local(), remote())),
                None => Err(Error::Connect {
                    source_addr: None,
                    destination: peer(),
                    error: std::sync::Arc::new(std::io::Error::other(
                        "the test allows one connection",
                    )),
                }),
            }
        }
    });
    let (rd, wr) = tokio::io::split(theirs);
    let peer = Peer {
        reader: FramedRead::new(rd, RpcCodec::default()),
        writer: FramedWrite::new(wr, RpcCodec::default()),
    };
    (client, peer)
}

/// A call timed out with its request sent; its reply comes while a newer
/// call waits: it is dropped and counted, never handed to the newer call.
/// Ten times over, and a duplicate of each. (Reserved XIDs hold their
/// slots, so the client has one slot more than the calls that time out.)
#[test]
fn a_late_reply_never_reaches_a_newer_call() {
    paused_runtime().block_on(async {
        let options = ClientOptions {
            max_in_flight: 11,
            ..quiet_client_options()
        };
        let (client, mut peer) = connect_once(options);
        let mut old = Vec::new();
        for token in 0..10u64 {
            let result = client
                .call_with(PROG, VERS, PROC, token_bytes(token), &within(ms(100)))
                .await;
            assert!(
                matches!(result, Err(Error::CallTimeout { sent: true, .. })),
                "{result:?}"
            );
            let (xid, args) = peer.next_real_call().await;
            assert_eq!(args, token_bytes(token));
            old.push(xid);
        }
        let newer = spawn_call(&client, 100, ms(60_000));
        let (xid, args) = peer.next_real_call().await;
        assert_eq!(args, token_bytes(100));
        assert!(!old.contains(&xid), "xid {xid} reused while reserved");
        // The late replies, then each again.
        for round in 0..2 {
            for (token, &old_xid) in old.iter().enumerate() {
                peer.reply(old_xid, token_bytes(token as u64)).await;
                tokio::time::sleep(ms(10)).await;
                assert!(!newer.is_finished(), "round {round}, token {token}");
            }
        }
        tokio::time::sleep(ms(1_000)).await;
        assert!(!newer.is_finished());
        peer.reply(xid, token_bytes(100)).await;
        assert_eq!(newer.await.unwrap().unwrap(), token_bytes(100));
        let stats = client.stats();
        assert_eq!(
            (
                stats.timed_out,
                stats.late_replies,
                stats.unknown_replies,
                stats.succeeded
            ),
            (10, 10, 10, 1),
            "{stats:?}"
        );
    });
}

/// The same with callers that drop their futures: the XID of a dropped
/// call stays reserved, and its reply is late, not somebody else's.
#[test]
fn a_dropped_callers_reply_never_reaches_a_newer_call() {
    paused_runtime().block_on(async {
        let options = ClientOptions {
            max_in_flight: 11,
            ..quiet_client_options()
        };
        let (client, mut peer) = connect_once(options);
        let mut old = Vec::new();
        for token in 0..10u64 {
            let options = within(ms(60_000));
            let call = client.call_with(PROG, VERS, PROC, token_bytes(token), &options);
            assert!(tokio::time::timeout(ms(50), call).await.is_err());
            let (xid, args) = peer.next_real_call().await;
            assert_eq!(args, token_bytes(token));
            old.push(xid);
        }
        let newer = spawn_call(&client, 100, ms(60_000));
        let (xid, _) = peer.next_real_call().await;
        assert!(!old.contains(&xid), "xid {xid} reused while reserved");
        for (token, &old_xid) in old.iter().enumerate() {
            peer.reply(old_xid, token_bytes(token as u64)).await;
        }
        tokio::time::sleep(ms(1_000)).await;
        assert!(!newer.is_finished());
        peer.reply(xid, token_bytes(100)).await;
        assert_eq!(newer.await.unwrap().unwrap(), token_bytes(100));
        let stats = client.stats();
        assert_eq!(
            (stats.timed_out, stats.late_replies, stats.succeeded),
            (0, 10, 1),
            "{stats:?}"
        );
    });
}

/// A reserved XID holds its in-flight slot: with one slot, a call after a
/// timed-out one waits (unsent) until the late reply frees the slot, then
/// goes out with a fresh XID and gets its own reply.
#[test]
fn a_reserved_xid_holds_its_slot_until_the_late_reply() {
    paused_runtime().block_on(async {
        let options = ClientOptions {
            max_in_flight: 1,
            ..quiet_client_options()
        };
        let (client, mut peer) = connect_once(options);
        let result = client
            .call_with(PROG, VERS, PROC, token_bytes(1), &within(ms(100)))
            .await;
        assert!(
            matches!(result, Err(Error::CallTimeout { sent: true, .. })),
            "{result:?}"
        );
        let (old, _) = peer.next_real_call().await;
        // No slot: the next call times out waiting for one, never sent.
        let result = client
            .call_with(PROG, VERS, PROC, token_bytes(2), &within(ms(100)))
            .await;
        assert!(
            matches!(result, Err(Error::CallTimeout { sent: false, .. })),
            "{result:?}"
        );
        let newer = spawn_call(&client, 3, ms(60_000));
        tokio::time::sleep(ms(1_000)).await;
        assert_eq!(client.stats().sent, 1, "the newer call waits for the slot");
        peer.reply(old, token_bytes(1)).await;
        let (xid, args) = peer.next_real_call().await;
        assert_eq!(args, token_bytes(3));
        assert_ne!(xid, old);
        peer.reply(xid, token_bytes(3)).await;
        assert_eq!(newer.await.unwrap().unwrap(), token_bytes(3));
        let stats = client.stats();
        assert_eq!(
            (stats.timed_out, stats.late_replies, stats.succeeded),
            (2, 1, 1),
            "{stats:?}"
        );
    });
}

/// With calls outstanding and the server answering only pings, the
/// connection lives on: the slow call gets its reply after 30 s.
#[test]
fn answered_pings_keep_a_slow_call_alive() {
    paused_runtime().block_on(async {
        let options = ClientOptions {
            ping_interval: ms(1_000),
            ping_timeout: ms(3_000),
            ..ClientOptions::default()
        };
        let (client, mut peer) = connect_once(options);
        let t0 = Instant::now();
        let call = spawn_call(&client, 7, ms(60_000));
        let (xid, header, _) = peer.next_call().await;
        assert!(!is_ping(&header));
        let mut pings = 0;
        let answer_at = t0 + ms(30_000);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(answer_at) => break,
                (ping, header, args) = peer.next_call() => {
                    assert!(is_ping(&header), "{header:?}");
                    assert!(args.is_empty());
                    pings += 1;
                    peer.reply(ping, Bytes::new()).await;
                }
            }
        }
        peer.reply(xid, token_bytes(7)).await;
        assert_eq!(call.await.unwrap().unwrap(), token_bytes(7));
        assert!((25..=30).contains(&pings), "{pings} pings in 30 s");
        assert!(matches!(
            client.state(),
            peerwire::ConnectionState::Connected { .. }
        ));
    });
}

/// The server reads but answers nothing, not even pings: the connection is
/// declared dead at the ping timeout, long before the call's deadline.
#[test]
fn unanswered_pings_end_the_connection() {
    paused_runtime().block_on(async {
        let options = ClientOptions {
            ping_interval: ms(1_000),
            ping_timeout: ms(3_000),
            ..ClientOptions::default()
        };
        let (client, mut peer) = connect_once(options);
        let t0 = Instant::now();
        let call = tokio::spawn({
            let client = client.clone();
            async move {
                let result = client
                    .call_with(PROG, VERS, PROC, token_bytes(7), &within(ms(60_000)))
                    .await;
                (result, Instant::now())
            }
        });
        let mut pings = 0;
        let mut calls = 0;
        while let Some(Ok(Ok(message))) = peer.reader.next().await {
            let MessageBody::Call { header, .. } = message.body else {
                panic!("a reply from the client")
            };
            if is_ping(&header) {
                pings += 1;
            } else {
                calls += 1;
            }
        }
        let (result, at) = call.await.unwrap();
        assert!(
            matches!(
                result,
                Err(Error::Disconnected {
                    cause: DisconnectCause::PingTimeout,
                    sent: true,
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(at - t0, ms(3_000));
        assert_eq!((calls, pings), (1, 1));
        assert_eq!(client.stats().failed, 1);
    });
}

/// A call whose deadline passes while it waits for a slot
/// (`max_in_flight`) fails with CallTimeout and counts as timed out, so
/// `succeeded + failed + timed_out` adds up to the calls made.
#[test]
fn a_call_that_times_out_waiting_for_a_slot_counts_as_timed_out() {
    paused_runtime().block_on(async {
        let options = ClientOptions {
            max_in_flight: 1,
            ..quiet_client_options()
        };
        let (client, mut peer) = connect_once(options);
        let first = spawn_call(&client, 1, ms(10_000));
        let (xid, _) = peer.next_real_call().await;
        let result = client
            .call_with(PROG, VERS, PROC, token_bytes(2), &within(ms(100)))
            .await;
        assert!(
            matches!(result, Err(Error::CallTimeout { sent: false, .. })),
            "{result:?}"
        );
        peer.reply(xid, token_bytes(1)).await;
        assert_eq!(first.await.unwrap().unwrap(), token_bytes(1));
        let stats = client.stats();
        assert_eq!(
            (stats.succeeded, stats.failed, stats.timed_out),
            (1, 0, 1),
            "two calls, one answered, one timed out: {stats:?}"
        );
    });
}
