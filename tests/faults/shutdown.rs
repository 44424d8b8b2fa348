//! Shutdown: the call in progress finishes within the grace period, later
//! ones are abandoned, and dropping the handle does not stop the server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peerwire::{CallContext, Client, Error, ServerOptions, Service};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep, timeout};

use crate::support::common::{GENEROUS, PROG, echo, ms, quiet_client_options, start, within};

/// A handler that runs until `gate` has a permit; `entered` hears each call.
fn gated(gate: Arc<Semaphore>, entered: mpsc::UnboundedSender<()>) -> impl Service {
    move |_: CallContext, _: u32, args: Bytes| {
        let (gate, entered) = (gate.clone(), entered.clone());
        async move {
            let _ = entered.send(());
            gate.acquire().await.unwrap().forget();
            Ok(args)
        }
    }
}

async fn refused(addr: std::net::SocketAddr) -> bool {
    matches!(
        TcpStream::connect(addr).await,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Shutdown stops accepting at once; the call in progress completes within
/// the grace period and gets its reply; then everything is closed.
#[tokio::test]
async fn graceful_shutdown_lets_the_call_in_progress_finish() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let (server, addr) = start(
        ServerOptions {
            shutdown_grace: Duration::from_secs(30),
            ..ServerOptions::default()
        },
        gated(gate.clone(), entered_tx),
    );
    let listen_addr = server.local_addrs()[0];
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call(PROG, 1, 1, Bytes::from_static(b"in progress"))
                .await
        }
    });
    timeout(GENEROUS, entered.recv()).await.unwrap().unwrap();
    let shutdown = tokio::spawn(server.shutdown());
    // New connections are refused once the listener is closed.
    let asked = Instant::now();
    while !refused(listen_addr).await {
        assert!(asked.elapsed() < GENEROUS, "still accepting after shutdown");
        sleep(ms(20)).await;
    }
    assert!(!call.is_finished());
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the call"
    );
    gate.add_permits(1);
    let out = timeout(GENEROUS, call).await.unwrap().unwrap().unwrap();
    assert_eq!(&out[..], b"in progress");
    timeout(GENEROUS, shutdown).await.unwrap().unwrap();
    assert!(refused(listen_addr).await);
    // The client's next call cannot reach the server.
    let result = client
        .call_with(PROG, 1, 1, Bytes::new(), &within(ms(500)))
        .await;
    assert!(result.is_err(), "{result:?}");
}

/// A call still running when the grace period ends is abandoned: the
/// client hears of it at once, as sent.
#[tokio::test]
async fn shutdown_abandons_calls_still_running_after_the_grace_period() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let grace = ms(300);
    let (server, addr) = start(
        ServerOptions {
            shutdown_grace: grace,
            ..ServerOptions::default()
        },
        gated(gate, entered_tx),
    );
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(PROG, 1, 1, Bytes::from_static(b"stuck")).await }
    });
    timeout(GENEROUS, entered.recv()).await.unwrap().unwrap();
    let start = Instant::now();
    timeout(GENEROUS, server.shutdown()).await.unwrap();
    assert!(start.elapsed() >= grace);
    let result = timeout(GENEROUS, call).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(Error::Disconnected { sent: true, .. })),
        "{result:?}"
    );
}

/// Dropping the `RunningServer` handle does not stop the server, as its
/// documentation says: only `shutdown` does.
#[tokio::test]
async fn dropping_the_running_server_handle_does_not_stop_it() {
    let (server, addr) = start(ServerOptions::default(), echo);
    let listen_addr = server.local_addrs()[0];
    drop(server);
    sleep(ms(100)).await;
    assert!(
        !refused(listen_addr).await,
        "the listener closed when the handle was dropped"
    );
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let result = client
        .call_with(PROG, 1, 1, Bytes::from_static(b"x"), &within(ms(5_000)))
        .await;
    assert_eq!(&result.expect("the server stopped")[..], b"x");
}
