//! One connection that always has work does not hold its runtime.
//!
//! A peer on another thread floods one connection of a current-thread
//! runtime: pipelined calls that a ready handler answers inline (server
//! side), or replies nobody asked for (client side). Another task on that
//! runtime does nothing but `yield_now` and, at each of its turns, reads
//! how many records the flooded side handled so far. The connection's task
//! charges each record to tokio's cooperative budget and yields when it is
//! spent, so between two turns of the other task it handles at most a few
//! budgets' worth of records, not everything the socket holds.
//!
//! The bound is a count, not a time: it holds on any machine however slow.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use bytes::{Bytes, BytesMut};
use peerwire::proto::{AcceptStatus, CallHeader, Message, ReplyBody, record_header};
use peerwire::{Client, ClientOptions, Endpoint, ProcError, Server, ServerOptions};

const PROGRAM: u32 = 0x2000_fa17;
const VERSION: u32 = 1;
const ECHO: u32 = 1;

/// Records the flooding peer sends.
const FLOOD: u64 = 100_000;

/// The most records one connection may handle between two turns of
/// another task on its runtime: tokio's budget is 128 units a poll (one
/// poll is what the connection gets), so this leaves room for four.
/// Without the budget, a poll ran up to 32 reads of up to 64 KiB (tens of
/// thousands of small records) and rescheduled itself at once.
const BOUND: u64 = 512;

/// `n` record-marked messages made by `message(i)`.
fn records(n: u64, message: impl Fn(u32) -> Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut body = BytesMut::new();
    for i in 0..n {
        body.clear();
        message(i as u32).encode(&mut body);
        out.extend_from_slice(&record_header(body.len() as u32, true));
        out.extend_from_slice(&body);
    }
    out.to_vec()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Yields until `count()` reaches `until`; returns the most it grew
/// between two turns.
async fn most_between_turns(count: impl Fn() -> u64, until: u64) -> u64 {
    let mut last = count();
    let mut most = 0;
    while last < until {
        tokio::task::yield_now().await;
        let now = count();
        most = most.max(now - last);
        last = now;
    }
    most
}

/// The XIDs of the replies read from `stream` until it ends.
fn read_reply_xids(mut stream: TcpStream) -> Vec<u32> {
    let (mut held, mut xids) = (Vec::new(), Vec::new());
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            return xids;
        }
        held.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while held.len() - at >= 8 {
            let mark = u32::from_be_bytes(held[at..at + 4].try_into().unwrap());
            let len = (mark & 0x7fff_ffff) as usize;
            if held.len() - at < 4 + len {
                break;
            }
            xids.push(u32::from_be_bytes(held[at + 4..at + 8].try_into().unwrap()));
            at += 4 + len;
        }
        held.drain(..at);
    }
}

/// Runs `test` on a current-thread runtime, failing it (rather than
/// hanging) if it has not finished in a minute: a guard against records
/// lost for good, not a measure of speed.
fn on_runtime(test: impl std::future::Future<Output = ()>) {
    runtime().block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(60), test)
            .await
            .expect("the flood was not handled within a minute");
    });
}

#[test]
fn a_server_connection_flooded_with_calls_lets_other_tasks_run_and_answers_each_in_order() {
    on_runtime(async {
        let server = Server::new(ServerOptions::default())
            .service(
                PROGRAM,
                VERSION,
                |_ctx, procedure, args: Bytes| async move {
                    match procedure {
                        ECHO => Ok(args),
                        _ => Err(ProcError::ProcUnavail),
                    }
                },
            )
            .serve(&["127.0.0.1:0".parse().unwrap()])
            .unwrap();
        let address = server.local_addrs()[0];
        let calls = records(FLOOD, |xid| {
            Message::call(xid, CallHeader::new(PROGRAM, VERSION, ECHO), Bytes::new())
        });
        // The flooding peer: one thread writes every call at once, then
        // closes its side; another reads the replies until the server
        // closes, so the server never stops for a full outbox.
        let stream = TcpStream::connect(address).unwrap();
        let replies = stream.try_clone().unwrap();
        let reader = thread::spawn(move || read_reply_xids(replies));
        let writer = thread::spawn(move || {
            let mut stream = stream;
            stream.write_all(&calls).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let most = most_between_turns(|| server.stats().calls, FLOOD).await;
        writer.join().unwrap();
        let xids = tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        assert!(
            most <= BOUND,
            "the connection ran {most} calls between two turns of another task (at most {BOUND} expected)"
        );
        assert_eq!(xids.len() as u64, FLOOD, "every call answered");
        assert!(
            xids.iter().enumerate().all(|(i, xid)| *xid == i as u32),
            "replies in the calls' order"
        );
    });
}

#[test]
fn a_client_connection_flooded_with_replies_lets_other_tasks_run() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let replies = records(FLOOD, |xid| {
        let body = ReplyBody::accepted(AcceptStatus::Success);
        Message::reply(xid.wrapping_mul(7919), body, Bytes::new())
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    // The flooding server: writes replies nobody asked for, then holds the
    // connection open until the test is done.
    let flooder = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(&replies).unwrap();
        let _ = done_rx.recv();
    });
    on_runtime(async {
        let client = Client::new(vec![Endpoint::from(address)], ClientOptions::default()).unwrap();
        client.connect().await.unwrap();
        let most = most_between_turns(|| client.stats().unknown_replies, FLOOD).await;
        assert!(
            most <= BOUND,
            "the connection delivered {most} records between two turns of another task (at most {BOUND} expected)"
        );
    });
    done_tx.send(()).unwrap();
    flooder.join().unwrap();
}
