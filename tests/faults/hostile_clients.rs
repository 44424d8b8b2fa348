//! Clients that misbehave: a partial header, a record trickled a byte at a
//! time, and more connections than the limit.

use bytes::Bytes;
use peerwire::{Client, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use crate::support::common::{GENEROUS, PROG, echo, eventually, ms, quiet_client_options, start};

/// Slowloris: two bytes of a record header, then nothing. The server closes
/// the connection at its idle timeout, and not before.
#[tokio::test]
async fn a_partial_record_header_is_closed_at_the_idle_timeout() {
    let idle = ms(300);
    let (server, addr) = start(
        ServerOptions {
            idle_timeout: idle,
            ..ServerOptions::default()
        },
        echo,
    );
    // The server's idle clock starts when it takes the connection, after
    // this instant; the two bytes restart it.
    let start = Instant::now();
    let mut stream = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    stream.write_all(&[0x80, 0x00]).await.unwrap();
    let mut buf = [0u8; 64];
    let read = timeout(GENEROUS, stream.read(&mut buf))
        .await
        .expect("the server never closed the connection");
    let elapsed = start.elapsed();
    match read {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    assert!(elapsed >= idle, "closed after {elapsed:?}");
    eventually("the server counts the closed connection", || {
        server.stats().closed == 1
    })
    .await;
    // The server still serves others.
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    client
        .call(PROG, 1, 1, Bytes::from_static(b"ok"))
        .await
        .unwrap();
    server.shutdown().await;
}

/// A record trickled a byte at a time does not hold the connection open:
/// the idle clock counts from the last whole record, not the last byte.
#[tokio::test]
async fn a_record_trickled_byte_by_byte_is_closed_at_the_idle_timeout() {
    let idle = ms(300);
    let (server, _addr) = start(
        ServerOptions {
            idle_timeout: idle,
            ..ServerOptions::default()
        },
        echo,
    );
    let start = Instant::now();
    let mut stream = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    stream.write_all(&[0x80, 0x00, 0x03, 0xe8]).await.unwrap(); // 1000 bytes announced
    let mut buf = [0u8; 64];
    let closed = loop {
        // One byte every 100 ms: well inside the idle timeout each time.
        tokio::select! {
            read = stream.read(&mut buf) => break read,
            () = tokio::time::sleep(ms(100)) => {
                if stream.write_all(&[0]).await.is_err() {
                    break Ok(0);
                }
            }
        }
        assert!(
            start.elapsed() < GENEROUS,
            "the trickle kept the connection open"
        );
    };
    match closed {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    assert!(
        start.elapsed() >= idle,
        "closed after {:?}",
        start.elapsed()
    );
    server.shutdown().await;
}

/// With `max_connections = 2`, a third connection waits in the kernel's
/// backlog: its call is answered only after one of the first two closes.
#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let (server, addr) = start(
        ServerOptions {
            max_connections: 2,
            ..ServerOptions::default()
        },
        echo,
    );
    let first = Client::new(vec![addr.clone()], quiet_client_options()).expect("a destination");
    let second = Client::new(vec![addr.clone()], quiet_client_options()).expect("a destination");
    first
        .call(PROG, 1, 1, Bytes::from_static(b"1"))
        .await
        .unwrap();
    second
        .call(PROG, 1, 1, Bytes::from_static(b"2"))
        .await
        .unwrap();
    let third = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let third = third.clone();
        async move { third.call(PROG, 1, 1, Bytes::from_static(b"3")).await }
    });
    // The third connects (the kernel completes the handshake) and sends.
    eventually("the third call is written", || third.stats().sent == 1).await;
    sleep(ms(300)).await;
    assert!(!call.is_finished(), "served beyond the connection limit");
    assert_eq!(server.stats().accepted, 2);
    first.close();
    let out = timeout(GENEROUS, call).await.unwrap().unwrap().unwrap();
    assert_eq!(&out[..], b"3");
    assert_eq!(server.stats().accepted, 3);
    // The second connection was served throughout.
    second
        .call(PROG, 1, 1, Bytes::from_static(b"2"))
        .await
        .unwrap();
    server.shutdown().await;
}
