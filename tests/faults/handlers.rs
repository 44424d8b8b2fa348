//! Handlers that misbehave: panics, futures that panic when dropped, and
//! more calls than may be in progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use peerwire::{
    CallContext, CallStatus, Client, ConnectionState, Error, ProcError, ServerOptions, Service,
};
use tokio::sync::Semaphore;
use tokio::time::{sleep, timeout};

use crate::support::common::{
    GENEROUS, PROG, echo, eventually, ms, quiet_client_options, start, within,
};

/// A handler that panics is answered with SYSTEM_ERR; the other calls on
/// the same connection, in progress at the time or made later, are served.
#[tokio::test]
async fn a_panicking_handler_gets_system_err_and_the_connection_lives_on() {
    let (server, addr) = start(ServerOptions::default(), echo);
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    client
        .call(PROG, 1, 1, Bytes::from_static(b"warm"))
        .await
        .unwrap();
    let ConnectionState::Connected { local, .. } = client.state() else {
        panic!("{:?}", client.state())
    };
    let (slow, panicked, quick) = tokio::join!(
        client.call(PROG, 1, 3, Bytes::from_static(&[20])),
        client.call(PROG, 1, 4, Bytes::new()),
        client.call(PROG, 1, 1, Bytes::from_static(b"quick")),
    );
    assert!(
        matches!(
            panicked,
            Err(Error::CallRejected {
                status: CallStatus::SystemErr,
                procedure: 4,
                ..
            })
        ),
        "{panicked:?}"
    );
    assert_eq!(&slow.unwrap()[..], &[20]);
    assert_eq!(&quick.unwrap()[..], b"quick");
    for i in 0..10u8 {
        let out = client.call(PROG, 1, 1, Bytes::from(vec![i])).await.unwrap();
        assert_eq!(&out[..], &[i]);
    }
    assert_eq!(
        client.state(),
        ConnectionState::Connected {
            local,
            remote: server.local_addrs()[0]
        },
        "the same connection"
    );
    assert_eq!(client.stats().reconnects, 0);
    let stats = server.stats();
    assert_eq!((stats.panics, stats.accepted), (1, 1), "{stats:?}");
    server.shutdown().await;
}

/// A handler future that is ready at its poll after `pending` pending
/// ones (answering "ran"), and panics when it is dropped.
struct PanicsWhenDropped {
    pending: usize,
}

impl std::future::Future for PanicsWhenDropped {
    type Output = Result<Bytes, ProcError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.pending == 0 {
            return std::task::Poll::Ready(Ok(Bytes::from_static(b"ran")));
        }
        self.pending -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("a handler future panics when dropped, on purpose");
    }
}

/// [`echo`], plus procedure 5: a future ready at once (answered inline)
/// that panics when dropped; and 6: the same, pending once first (so it
/// runs as a task of its own).
struct DropPanics;

impl Service for DropPanics {
    fn call(
        &self,
        ctx: CallContext,
        procedure: u32,
        args: Bytes,
    ) -> peerwire::server::HandlerFuture {
        match procedure {
            5 => Box::pin(PanicsWhenDropped { pending: 0 }),
            6 => Box::pin(PanicsWhenDropped { pending: 1 }),
            _ => Box::pin(echo(ctx, procedure, args)),
        }
    }
}

fn is_system_err(result: &Result<Bytes, Error>) -> bool {
    matches!(
        result,
        Err(Error::CallRejected {
            status: CallStatus::SystemErr,
            ..
        })
    )
}

/// A handler future answered inline whose drop panics: its call gets
/// SYSTEM_ERR; the calls in progress beside it on the same connection and
/// the later ones are served; the connection lives on, and when it ends it
/// is counted closed.
#[tokio::test]
async fn an_inline_handler_future_that_panics_when_dropped_harms_only_its_own_call() {
    let (server, addr) = start(ServerOptions::default(), DropPanics);
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    client
        .call(PROG, 1, 1, Bytes::from_static(b"warm"))
        .await
        .unwrap();
    let generous = within(GENEROUS);
    let (slow, dropped, quick) = tokio::join!(
        client.call_with(PROG, 1, 3, Bytes::from_static(&[20]), &generous),
        client.call_with(PROG, 1, 5, Bytes::new(), &generous),
        client.call_with(PROG, 1, 1, Bytes::from_static(b"quick"), &generous),
    );
    assert!(is_system_err(&dropped), "{dropped:?}");
    assert_eq!(&slow.unwrap()[..], &[20]);
    assert_eq!(&quick.unwrap()[..], b"quick");
    assert_eq!(
        &client
            .call(PROG, 1, 1, Bytes::from_static(b"after"))
            .await
            .unwrap()[..],
        b"after"
    );
    assert_eq!(client.stats().reconnects, 0);
    let stats = server.stats();
    assert_eq!(
        (stats.panics, stats.accepted, stats.closed),
        (1, 1, 0),
        "{stats:?}"
    );
    client.close();
    eventually("the connection counted closed", || {
        server.stats().closed == 1
    })
    .await;
    server.shutdown().await;
}

/// A handler future run as a task of its own whose drop panics: its call
/// gets SYSTEM_ERR, and its slot is freed: with one call in progress
/// allowed, the next call is served.
#[tokio::test]
async fn a_spawned_handler_future_that_panics_when_dropped_gets_system_err_and_frees_its_slot() {
    let options = ServerOptions {
        max_in_progress: 1,
        ..ServerOptions::default()
    };
    let (server, addr) = start(options, DropPanics);
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let dropped = client
        .call_with(PROG, 1, 6, Bytes::new(), &within(GENEROUS))
        .await;
    assert!(is_system_err(&dropped), "{dropped:?}");
    let next = client
        .call_with(PROG, 1, 1, Bytes::from_static(b"next"), &within(GENEROUS))
        .await;
    assert_eq!(&next.unwrap()[..], b"next");
    assert_eq!(client.stats().reconnects, 0);
    assert_eq!(server.stats().panics, 1);
    server.shutdown().await;
}

/// With `max_in_progress = 2` and handlers that wait for a permit, a third
/// call on the connection is not dispatched until one of the two completes.
#[tokio::test]
async fn calls_beyond_the_in_progress_limit_wait_for_a_handler_to_finish() {
    let dispatched = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (server, addr) = start(
        ServerOptions {
            max_in_progress: 2,
            ..ServerOptions::default()
        },
        {
            let (dispatched, gate) = (dispatched.clone(), gate.clone());
            move |_: CallContext, _: u32, args: Bytes| {
                let (dispatched, gate) = (dispatched.clone(), gate.clone());
                async move {
                    dispatched.fetch_add(1, Ordering::SeqCst);
                    gate.acquire().await.unwrap().forget();
                    Ok(args)
                }
            }
        },
    );
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let calls: Vec<_> = (0..3u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call(PROG, 1, 1, Bytes::from(vec![i])).await })
        })
        .collect();
    eventually("two calls dispatched", || {
        dispatched.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("all three calls written", || client.stats().sent == 3).await;
    sleep(ms(300)).await;
    assert_eq!(
        dispatched.load(Ordering::SeqCst),
        2,
        "dispatched beyond the limit"
    );
    assert_eq!(server.stats().calls, 2);
    assert!(calls.iter().all(|call| !call.is_finished()));
    gate.add_permits(1);
    eventually("the third call dispatched", || {
        dispatched.load(Ordering::SeqCst) == 3
    })
    .await;
    eventually("one call answered", || {
        calls.iter().filter(|call| call.is_finished()).count() == 1
    })
    .await;
    sleep(ms(100)).await;
    assert_eq!(calls.iter().filter(|call| call.is_finished()).count(), 1);
    gate.add_permits(2);
    let mut outs = Vec::new();
    for call in calls {
        outs.push(timeout(GENEROUS, call).await.unwrap().unwrap().unwrap()[0]);
    }
    assert_eq!(outs, [0, 1, 2]);
    assert_eq!(server.stats().calls, 3);
    server.shutdown().await;
}
