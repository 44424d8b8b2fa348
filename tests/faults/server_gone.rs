//! The server dies, is down, or stops reading: what `sent` says of the
//! calls it took with it, backoff and the breaker, and deadlines that hold.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use peerwire::{
    Client, ClientOptions, ConnectionState, DisconnectCause, Endpoint, Error, ProcError, Server,
    ServerOptions,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, timeout};

use crate::support::common::{
    GENEROUS, PROG, echo, free_port, ms, quiet_client_options, start, within,
};

/// More bytes than the two socket buffers of a loopback connection can
/// hold when the receiver never reads: a write of this size cannot finish.
/// Each buffer is at most the larger of its `tcp_[rw]mem` maximum (autotuning)
/// and twice its `net.core` maximum (an explicit `SO_[RS]NDBUF`).
fn more_than_socket_buffers() -> usize {
    let max = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().last()?.parse::<usize>().ok())
    };
    let buffer = |tcp: &str, core: &str| Some(max(tcp)?.max(2 * max(core)?));
    match (
        buffer("/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/core/rmem_max"),
        buffer("/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/core/wmem_max"),
    ) {
        (Some(r), Some(w)) => r + w + (4 << 20),
        _ => 96 << 20,
    }
}

/// A raw listener whose connections are accepted and held, never read,
/// until the returned sender fires (or is dropped): then they are closed.
async fn deaf_server() -> (Endpoint, oneshot::Sender<()>, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = Endpoint::from(listener.local_addr().unwrap());
    let (close, closed) = oneshot::channel::<()>();
    let (accepted_tx, accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                Ok((stream, _)) = listener.accept() => {
                    held.push(stream);
                    let _ = accepted_tx.send(());
                }
                _ = &mut closed => break,
            }
        }
        drop(held);
    });
    (addr, close, accepted)
}

/// A raw server reads two whole calls, then closes the connection: both
/// calls fail at once, saying they were sent (they may have run).
#[tokio::test]
async fn server_closing_mid_call_fails_pending_calls_as_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = Endpoint::from(listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        use futures_util::StreamExt;
        let (stream, _) = listener.accept().await.unwrap();
        let mut calls =
            tokio_util::codec::FramedRead::new(stream, peerwire::codec::RpcCodec::default());
        for _ in 0..2 {
            let call = calls.next().await.unwrap().unwrap().unwrap();
            assert!(matches!(
                call.body,
                peerwire::proto::MessageBody::Call { .. }
            ));
        }
        // Both calls are read whole; close without answering.
    });
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let start = Instant::now();
    let (a, b) = tokio::join!(
        client.call(PROG, 1, 1, Bytes::from_static(b"a")),
        client.call(PROG, 1, 1, Bytes::from_static(b"b")),
    );
    server.await.unwrap();
    for result in [a, b] {
        assert!(
            matches!(
                result,
                Err(Error::Disconnected {
                    sent: true,
                    cause: DisconnectCause::Closed | DisconnectCause::Io(_),
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert!(start.elapsed() < GENEROUS);
    assert_eq!(client.stats().failed, 2);
}

/// A peerwire server whose process dies (its runtime is torn down) while a
/// handler runs: the pending call fails promptly with `sent: true`, long
/// before its deadline.
#[tokio::test]
async fn server_killed_mid_call_fails_the_call_as_sent() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
    let (addr_tx, addr_rx) = oneshot::channel();
    let (kill, killed) = std::sync::mpsc::channel::<()>();
    let host = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _server = runtime.block_on(async move {
            let (server, addr) = start(ServerOptions::default(), move |_, _, _| {
                let entered = entered_tx.clone();
                async move {
                    let _ = entered.send(());
                    std::future::pending::<Result<Bytes, ProcError>>().await
                }
            });
            addr_tx.send(addr).unwrap();
            server
        });
        killed.recv().unwrap();
        // Every task dies with the runtime; the sockets close.
        runtime.shutdown_background();
    });
    let addr = addr_rx.await.unwrap();
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(PROG, 1, 1, Bytes::from_static(b"x")).await }
    });
    timeout(GENEROUS, entered.recv()).await.unwrap().unwrap();
    assert!(!call.is_finished());
    let killed_at = Instant::now();
    kill.send(()).unwrap();
    let result = timeout(GENEROUS, call).await.unwrap().unwrap();
    assert!(
        matches!(
            result,
            Err(Error::Disconnected {
                sent: true,
                cause: DisconnectCause::Closed | DisconnectCause::Io(_),
                ..
            })
        ),
        "{result:?}"
    );
    assert!(killed_at.elapsed() < GENEROUS);
    host.join().unwrap();
}

/// The server closes while the request is still half written (it never
/// read, and the request is larger than the socket buffers): the call whose
/// bytes partly reached the kernel fails with `sent: true` (bytes of it
/// left this host, so it may have run as far as we can know), and the one
/// queued behind it, none of whose bytes were written, with `sent: false`,
/// safe to retry.
#[tokio::test]
async fn server_gone_before_the_request_was_written_fails_as_not_sent() {
    let (addr, close, mut accepted) = deaf_server().await;
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let big = Bytes::from(vec![0x5a; more_than_socket_buffers()]);
    let calls = tokio::spawn({
        let client = client.clone();
        async move {
            tokio::join!(
                client.call(PROG, 1, 1, big),
                client.call(PROG, 1, 1, Bytes::from_static(b"small")),
            )
        }
    });
    timeout(GENEROUS, accepted.recv()).await.unwrap().unwrap();
    // Let the writer fill both buffers and block.
    sleep(ms(300)).await;
    assert!(!calls.is_finished());
    assert_eq!(client.stats().sent, 1, "only the big call has bytes out");
    drop(close);
    let (big, small) = timeout(GENEROUS, calls).await.unwrap().unwrap();
    assert!(
        matches!(big, Err(Error::Disconnected { sent: true, .. })),
        "{big:?}"
    );
    assert!(
        matches!(small, Err(Error::Disconnected { sent: false, .. })),
        "{small:?}"
    );
}

/// Nothing listens: attempts back off, doubling within ±20 % jitter; after
/// three failures the breaker opens and calls fail fast. A server comes up
/// on the port and the breaker's probe closes it.
#[tokio::test]
async fn backoff_then_breaker_then_recovery() {
    let port = free_port("127.0.0.1");
    let addr: Endpoint = format!("127.0.0.1:{port}").parse().unwrap();
    let base = ms(100);
    let options = ClientOptions {
        backoff_base: base,
        backoff_max: Duration::from_secs(10),
        backoff_jitter: 0.2,
        breaker_threshold: 3,
        ..quiet_client_options()
    };
    let client = Client::new(vec![addr.clone()], options).expect("a destination");

    // Record every state with when it was seen. On this current-thread
    // runtime the recorder runs whenever the driver waits, so it sees each
    // backoff (the driver sleeps through it).
    let seen: Arc<Mutex<Vec<(std::time::Instant, ConnectionState)>>> = Arc::default();
    let mut states = client.watch_state();
    let recorder = tokio::spawn({
        let seen = seen.clone();
        async move {
            while states.changed().await.is_ok() {
                let state = *states.borrow_and_update();
                seen.lock()
                    .unwrap()
                    .push((std::time::Instant::now(), state));
            }
        }
    });

    let t0 = std::time::Instant::now();
    let result = client.call(PROG, 1, 1, Bytes::from_static(b"x")).await;
    let Err(Error::CircuitOpen {
        failures,
        next_attempt,
        ..
    }) = result
    else {
        panic!("expected the breaker to open: {result:?}")
    };
    assert_eq!(failures, 3);
    assert!(t0.elapsed() < GENEROUS);

    let backoffs: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|&(at, state)| match state {
            ConnectionState::Backoff { until } => Some((at, until)),
            _ => None,
        })
        .collect();
    assert_eq!(backoffs.len(), 2, "{:?}", seen.lock().unwrap());
    let slack = ms(1);
    let lower = |n: u32| base.mul_f64(0.8) * n;
    let upper = |n: u32| base.mul_f64(1.2) * n + slack;
    // Each delay is counted from a failure that came after the previous
    // delay ended: a lower bound. The state is seen after its failure: the
    // rest of the delay at that moment is an upper bound.
    let (seen1, until1) = backoffs[0];
    let (seen2, until2) = backoffs[1];
    assert!(until1 >= t0 + lower(1), "{backoffs:?}");
    assert!(until2 >= until1 + lower(2), "{backoffs:?}");
    assert!(next_attempt >= until2 + lower(4), "{backoffs:?}");
    assert!(until1.saturating_duration_since(seen1) <= upper(1));
    assert!(until2.saturating_duration_since(seen2) <= upper(2));

    // Open: calls fail fast, without waiting for their deadline.
    let asked = Instant::now();
    let result = client
        .call_with(PROG, 1, 1, Bytes::from_static(b"x"), &within(GENEROUS))
        .await;
    assert!(
        matches!(result, Err(Error::CircuitOpen { .. })),
        "{result:?}"
    );
    assert!(asked.elapsed() < GENEROUS);
    // The state shows the open breaker until its next attempt.
    let state = client.state();
    let Err(Error::CircuitOpen { next_attempt, .. }) = result else {
        unreachable!()
    };
    assert!(
        state
            == ConnectionState::Open {
                until: next_attempt
            }
            || std::time::Instant::now() >= next_attempt,
        "{state:?}"
    );

    // A server comes up on the port: the next probe closes the breaker.
    let server = Server::new(ServerOptions::default())
        .service(PROG, 1, echo)
        .serve(&[addr])
        .unwrap();
    let up = Instant::now();
    loop {
        match client.call(PROG, 1, 1, Bytes::from_static(b"x")).await {
            Ok(out) => {
                assert_eq!(&out[..], b"x");
                break;
            }
            Err(Error::CircuitOpen { next_attempt, .. }) => {
                assert!(up.elapsed() < GENEROUS, "the breaker stays open");
                tokio::time::sleep_until(next_attempt.into()).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(
        matches!(client.state(), ConnectionState::Connected { .. }),
        "{:?}",
        client.state()
    );
    client
        .call(PROG, 1, 1, Bytes::from_static(b"y"))
        .await
        .unwrap();
    client.close();
    recorder.abort();
    server.shutdown().await;
}

/// The server accepts and never reads; the request is larger than the
/// socket buffers, so the write cannot finish. The deadline still fires;
/// the request's first bytes did reach the kernel, so it says `sent`.
#[tokio::test]
async fn a_server_that_stops_reading_cannot_hold_a_call_past_its_deadline() {
    let (addr, _close, mut accepted) = deaf_server().await;
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let big = Bytes::from(vec![0xa5; more_than_socket_buffers()]);
    let start = Instant::now();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call_with(PROG, 1, 1, big, &within(ms(500))).await }
    });
    timeout(GENEROUS, accepted.recv()).await.unwrap().unwrap();
    let result = timeout(GENEROUS, call).await.unwrap().unwrap();
    let elapsed = start.elapsed();
    assert!(
        matches!(
            result,
            Err(Error::CallTimeout {
                sent: true,
                after,
                ..
            }) if after == ms(500)
        ),
        "{result:?}"
    );
    assert!(elapsed >= ms(500), "{elapsed:?}");
    assert!(elapsed < GENEROUS);
    assert_eq!(client.stats().timed_out, 1);
}
