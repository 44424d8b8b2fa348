//! Core defects of calls and connections, each shown by one test on
//! loopback: what `sent` says, the server's timers while it cannot send,
//! cancellation's effect on other callers, and exact counters.
//!
//! The machines that run these are shared and noisy, so nothing here
//! measures speed: every upper bound on time is the configured timeout plus
//! seconds of slack, and only tells "the timer held" from "the timer waited
//! for something else".

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::RpcCodec;
use peerwire::peer::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION};
use peerwire::proto::{AcceptStatus, CallHeader, Message, MessageBody, ReplyBody};
use peerwire::{
    CallContext, Client, ClientOptions, DisconnectCause, Endpoint, Error, IdentityMode, NodeId,
    PeerTable, ProcError, ServerIdentity, ServerOptions,
};
use support::common::{GENEROUS, PROG, echo, ms, quiet_client_options, start, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::codec::{Encoder, Framed};

/// Slack on top of a configured timeout before it counts as not held.
const SLACK: Duration = Duration::from_secs(3);
/// No write progress for this long: the peer's writes are blocked (not
/// merely slow, on a loaded machine).
const STALL: Duration = Duration::from_secs(1);

fn new_client(addr: Endpoint, options: ClientOptions) -> Client {
    Client::new(vec![addr], options).expect("a client for one loopback destination")
}

/// Procedure 1 sleeps 0 to `most` ms (chosen by the XID, so
/// pseudo-random), then echoes.
async fn echo_after_up_to(
    most: u64,
    ctx: CallContext,
    procedure: u32,
    args: Bytes,
) -> Result<Bytes, ProcError> {
    match procedure {
        1 => {
            let spread = u64::from(ctx.xid).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
            sleep(ms(spread % (most + 1))).await;
            Ok(args)
        }
        _ => Err(ProcError::ProcUnavail),
    }
}

/// Procedure 1 sleeps 0–25 ms, then echoes.
async fn jittery(ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
    echo_after_up_to(25, ctx, procedure, args).await
}

/// Procedure 1 sleeps 0–2 ms, then echoes.
async fn brisk(ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
    echo_after_up_to(2, ctx, procedure, args).await
}

/// A deterministic pseudo-random source (xorshift64).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Polls `done()` until it holds or `bound` has passed since `since`;
/// returns when it held, measured from `since`.
async fn held_within(since: Instant, bound: Duration, done: impl Fn() -> bool) -> Option<Duration> {
    loop {
        if done() {
            return Some(since.elapsed());
        }
        if since.elapsed() > bound {
            return None;
        }
        sleep(ms(10)).await;
    }
}

// ---------------------------------------------------------------------------
// `sent` is exact
// ---------------------------------------------------------------------------

/// A call whose record the peer read whole is reported `sent: true` when
/// the connection then fails, even though a later record of the same write
/// batch could not be written.
///
/// Two calls start together, so both are queued before the client's writer
/// runs and go out in one batch: a small one, then one of 12 MiB, more than
/// the client's send buffer (`tcp_wmem` allows at most 4 MiB by default)
/// and the peer's receive buffer (kept small, and the peer never reads past
/// the first record) can hold. The peer reads the small call's record whole,
/// answers nothing and closes with unread data, which resets the
/// connection: the writer fails in the middle of the large record. The
/// small call reached the server, so `sent: false` ("safe to retry") would
/// make a retry run it twice. Whatever the batching, the peer reads the
/// small record before it closes, so `sent: true` is right for it.
#[tokio::test]
async fn a_call_the_peer_read_is_sent_when_a_later_record_of_its_batch_fails() {
    const SMALL: usize = 64;
    const LARGE: usize = 12 << 20;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let addr = Endpoint::from(listener.local_addr().unwrap());
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // Read records until the small call's has been read whole (it comes
        // first unless the client reorders them).
        let mut lengths = Vec::new();
        loop {
            // One record: fragments up to the one marked last.
            let mut len = 0;
            loop {
                let header = stream.read_u32().await.unwrap();
                let fragment = (header & 0x7fff_ffff) as usize;
                let mut bytes = vec![0; fragment];
                stream.read_exact(&mut bytes).await.unwrap();
                len += fragment;
                if header & 0x8000_0000 != 0 {
                    break;
                }
            }
            lengths.push(len);
            if len < 1024 {
                break;
            }
        }
        // Close with the large record unread: the kernel resets.
        drop(stream);
        lengths
    });
    let client = new_client(addr, quiet_client_options());
    let (small, large) = timeout(GENEROUS, async {
        tokio::join!(
            client.call(PROG, 1, 1, Bytes::from(vec![0x11; SMALL])),
            client.call(PROG, 1, 1, Bytes::from(vec![0x22; LARGE])),
        )
    })
    .await
    .expect("the calls fail promptly once the peer resets");
    let lengths = peer.await.unwrap();
    assert!(
        matches!(small, Err(Error::Disconnected { sent: true, .. })),
        "the peer read the small call's record whole (records read: {lengths:?} bytes), \
         yet it is reported {small:?}"
    );
    // Part of the large record may or may not have been handed to the
    // kernel when the reset came, so either `sent` is right for it.
    assert!(
        matches!(large, Err(Error::Disconnected { .. })),
        "{large:?}"
    );
}

// ---------------------------------------------------------------------------
// Server timers hold while the connection waits to send
// ---------------------------------------------------------------------------

/// `count` NULL call records (procedure 0 of `program` version `version`),
/// XIDs from `first_xid` up.
fn null_calls(program: u32, version: u32, first_xid: u32, count: u32) -> BytesMut {
    let mut codec = RpcCodec::default();
    let mut out = BytesMut::new();
    for i in 0..count {
        let call = Message::call(
            first_xid.wrapping_add(i),
            CallHeader::new(program, version, 0),
            Bytes::new(),
        );
        codec.encode(call, &mut out).unwrap();
    }
    out
}

/// What a flooding peer has done so far.
#[derive(Default)]
struct FloodProgress {
    /// Bytes written.
    written: AtomicU64,
    /// When a write last made progress, and when writes first stalled.
    times: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl FloodProgress {
    fn last_progress(&self) -> Option<Instant> {
        self.times.lock().unwrap().0
    }

    fn first_stall(&self) -> Option<Instant> {
        self.times.lock().unwrap().1
    }

    fn describe(&self, since: Instant) -> String {
        let at = |t: Option<Instant>| match t {
            Some(t) => format!("{:?}", t.saturating_duration_since(since)),
            None => "never".into(),
        };
        format!(
            "the peer wrote {} bytes of calls; its writes first stalled at {}, last progressed at {}",
            self.written.load(Ordering::Relaxed),
            at(self.first_stall()),
            at(self.last_progress()),
        )
    }
}

/// Connects a peer that never reads, with a small receive buffer so that
/// the server's replies fill it quickly.
async fn deaf_peer(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Writes NULL calls to `stream` and never reads. Stops when a write
/// fails (the server closed), or, with `stop_when_stalled`, once no write
/// has progressed for [`STALL`]: then it returns the stream, still open.
async fn flood(
    mut stream: TcpStream,
    program: u32,
    version: u32,
    progress: Arc<FloodProgress>,
    stop_when_stalled: bool,
) -> Option<TcpStream> {
    let mut xid = 1u32;
    loop {
        let chunk = null_calls(program, version, xid, 1024);
        xid = xid.wrapping_add(1024);
        let mut at = 0;
        while at < chunk.len() {
            // A single `write` is cancel-safe: on timeout nothing was written.
            match timeout(STALL, stream.write(&chunk[at..])).await {
                Ok(Ok(0) | Err(_)) => return None,
                Ok(Ok(n)) => {
                    at += n;
                    progress.written.fetch_add(n as u64, Ordering::Relaxed);
                    progress.times.lock().unwrap().0 = Some(Instant::now());
                }
                Err(_) => {
                    let mut times = progress.times.lock().unwrap();
                    times.1.get_or_insert(Instant::now());
                    if stop_when_stalled {
                        return Some(stream);
                    }
                }
            }
        }
    }
}

/// Waits until the flood has stalled (the server stopped reading because
/// its replies cannot go out); panics after [`GENEROUS`].
async fn until_stalled(progress: &FloodProgress) {
    let start = Instant::now();
    while progress.first_stall().is_none() {
        assert!(
            start.elapsed() < GENEROUS,
            "the flood never stalled: {}",
            progress.describe(start)
        );
        sleep(ms(10)).await;
    }
}

/// The handshake timeout closes a connection that never says HELLO even
/// while its replies cannot be sent.
///
/// The peer floods NULL calls to the handshake program (answered before
/// HELLO) and never reads, so the server's replies back up and its outgoing
/// side blocks, after 0.5–1 s in a debug build (several MiB of replies fill
/// the kernel's buffers first), 2 s on a heavily loaded machine. The
/// handshake timeout, 3 s, comes after that, so the server is blocked when
/// it expires. The write timeout is
/// 60 s, so it cannot be what closes the connection. A server whose read
/// loop waits for room in its reply queue outside its `select!` never looks
/// at the handshake timer while it waits: the connection outlives the
/// timeout by however long the write stays blocked.
#[tokio::test]
async fn handshake_timeout_holds_while_replies_cannot_be_sent() {
    let handshake_timeout = Duration::from_secs(3);
    let options = ServerOptions {
        identity: Some(ServerIdentity {
            node: "srv".parse::<NodeId>().unwrap(),
            cluster: None,
            peers: PeerTable::new(),
            mode: IdentityMode::Open,
        }),
        handshake_timeout,
        write_timeout: Duration::from_secs(60),
        ..ServerOptions::default()
    };
    let (server, _) = start(options, echo);
    let stream = deaf_peer(server.local_addrs()[0]).await;
    let connected = Instant::now();
    let progress = Arc::new(FloodProgress::default());
    let flooding = tokio::spawn(flood(
        stream,
        HANDSHAKE_PROGRAM,
        HANDSHAKE_VERSION,
        progress.clone(),
        false,
    ));
    let bound = handshake_timeout + SLACK;
    let closed = held_within(connected, bound, || server.stats().closed >= 1).await;
    assert!(
        closed.is_some(),
        "the connection was still open {:?} after it was accepted (handshake timeout {:?}); {}",
        connected.elapsed(),
        handshake_timeout,
        progress.describe(connected)
    );
    assert!(server.connections().is_empty());
    assert!(
        server.verdicts().iter().any(|v| !v.accepted),
        "the connection is closed, but no verdict says why: {:?}",
        server.verdicts()
    );
    flooding.abort();
}

/// `shutdown` returns within the grace period even when a connection's
/// replies cannot be sent.
///
/// The peer floods NULL calls and never reads until its writes stall (the
/// server's outgoing side is blocked and it has stopped reading); then the
/// server shuts down with a 1 s grace and a 60 s write timeout. No handler
/// is running, so nothing needs the grace at all; a read loop waiting for
/// room in its reply queue outside its `select!` never sees the shutdown,
/// and shutdown waits as long as the write stays blocked.
#[tokio::test]
async fn shutdown_grace_holds_while_replies_cannot_be_sent() {
    let grace = Duration::from_secs(1);
    let options = ServerOptions {
        shutdown_grace: grace,
        write_timeout: Duration::from_secs(60),
        ..ServerOptions::default()
    };
    let (server, _) = start(options, echo);
    let stream = deaf_peer(server.local_addrs()[0]).await;
    let started = Instant::now();
    let progress = Arc::new(FloodProgress::default());
    let flooding = tokio::spawn(flood(stream, PROG, 1, progress.clone(), false));
    until_stalled(&progress).await;
    let asked = Instant::now();
    let done = timeout(grace + SLACK, server.shutdown()).await;
    assert!(
        done.is_ok(),
        "shutdown had not returned {:?} after it was asked (grace {:?}); {}",
        asked.elapsed(),
        grace,
        progress.describe(started)
    );
    flooding.abort();
}

/// The idle timeout closes a connection whose peer stopped sending and
/// never reads, even while the server's replies to it cannot be sent.
///
/// The peer floods NULL calls until its writes stall for [`STALL`] (both
/// directions are full: the server stopped reading because its replies
/// cannot go out), then stops writing and never reads. No call is in
/// progress (NULL is answered by the server itself), so from the last call
/// the server could read, the connection is idle; the write timeout is
/// 60 s. The server must close it within the idle timeout of the last call
/// it read. That moment is not visible from outside: the server may still
/// read calls already in the socket buffers after the peer's last write
/// (up to a second later, in a debug build), so the bound is counted from
/// the peer's last write and has 5 s of slack. A read loop blocked on its
/// full reply queue outside its `select!` never sees the idle timer, and
/// only the write timeout ends the connection.
#[tokio::test]
async fn idle_timeout_holds_while_replies_cannot_be_sent() {
    let idle_timeout = Duration::from_secs(1);
    let options = ServerOptions {
        idle_timeout,
        write_timeout: Duration::from_secs(60),
        ..ServerOptions::default()
    };
    let (server, _) = start(options, echo);
    let stream = deaf_peer(server.local_addrs()[0]).await;
    let started = Instant::now();
    let progress = Arc::new(FloodProgress::default());
    let held = timeout(GENEROUS, flood(stream, PROG, 1, progress.clone(), true))
        .await
        .unwrap_or_else(|_| panic!("the flood never stalled: {}", progress.describe(started)));
    let last = progress.last_progress().expect("the peer wrote something");
    let bound = idle_timeout + Duration::from_secs(5);
    let closed = held_within(last, bound, || server.stats().closed >= 1).await;
    assert!(
        closed.is_some(),
        "the connection was still open {:?} after the peer's last call (idle timeout {:?}); {}",
        last.elapsed(),
        idle_timeout,
        progress.describe(started)
    );
    drop(held);
}

// ---------------------------------------------------------------------------
// Cancellation never harms other callers
// ---------------------------------------------------------------------------

/// What a cancellation storm's callers saw.
#[derive(Debug, Default)]
struct StormOutcome {
    /// Results the impatient callers received before dropping their call.
    impatient_ok: u64,
    /// Calls the impatient callers dropped.
    impatient_dropped: u64,
    /// Calls of the patient callers that succeeded.
    patient_ok: u64,
    /// Failures of the patient callers' calls.
    patient_failed: Vec<Error>,
}

/// Runs `impatient` callers that each start a call and drop it after a
/// pseudo-random 0–2 ms, again and again, alongside `patient` callers that
/// never cancel (30 s deadline), for `run_for`; waits for every caller's
/// last call to finish.
async fn storm(client: &Client, run_for: Duration, impatient: u64, patient: u64) -> StormOutcome {
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = Arc::new(Mutex::new(StormOutcome::default()));
    let mut tasks = Vec::new();
    for n in 0..impatient {
        let (client, stop, outcome) = (client.clone(), stop.clone(), outcome.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(n + 1);
            let (mut ok, mut dropped) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let wait = Duration::from_micros(rng.next() % 2001);
                match timeout(wait, client.call(PROG, 1, 1, Bytes::from_static(b"i"))).await {
                    Ok(Ok(_)) => ok += 1,
                    Ok(Err(_)) => {}
                    Err(_) => dropped += 1,
                }
            }
            let mut outcome = outcome.lock().unwrap();
            outcome.impatient_ok += ok;
            outcome.impatient_dropped += dropped;
        }));
    }
    for _ in 0..patient {
        let (client, stop, outcome) = (client.clone(), stop.clone(), outcome.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = client
                    .call_with(PROG, 1, 1, Bytes::from_static(b"p"), &within(ms(30_000)))
                    .await;
                let mut outcome = outcome.lock().unwrap();
                match result {
                    Ok(_) => outcome.patient_ok += 1,
                    Err(error) => outcome.patient_failed.push(error),
                }
            }
        }));
    }
    sleep(run_for).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        timeout(GENEROUS, task).await.unwrap().unwrap();
    }
    Arc::try_unwrap(outcome).unwrap().into_inner().unwrap()
}

/// Callers that drop their calls never make other callers' calls fail.
///
/// Sixteen impatient callers each start a call and drop it after 0–2 ms,
/// over and over, against a healthy server whose handler takes 0–25 ms;
/// four patient callers make calls with a 30 s deadline the whole time.
/// Every patient call must succeed. A dropped call's XID stays reserved
/// until its late reply; if reserved XIDs do not count against
/// `max_in_flight`, dropped calls free their slot at once, new calls pile
/// up behind the server's limit of calls in progress, the reserved XIDs
/// exceed `max_reserved`, and the client closes the connection as
/// "clogged", failing the patient callers' calls with it. Counting
/// reserved XIDs against the in-flight limit keeps them at or below it.
///
/// The server takes at most 16 calls in progress per connection (default
/// 64), so that the pile-up shows within the run even on a loaded machine;
/// the client's options are the defaults (64 calls in flight, 1024 reserved
/// XIDs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_storm_never_fails_patient_callers() {
    let options = ServerOptions {
        max_in_progress: 16,
        ..ServerOptions::default()
    };
    let (server, addr) = start(options, jittery);
    let client = new_client(addr, quiet_client_options());
    client
        .call(PROG, 1, 1, Bytes::from_static(b"w"))
        .await
        .unwrap();
    let outcome = storm(&client, ms(2500), 16, 4).await;
    let clogged = outcome
        .patient_failed
        .iter()
        .filter(|e| {
            matches!(
                e,
                Error::Disconnected {
                    cause: DisconnectCause::Clogged,
                    ..
                }
            )
        })
        .count();
    assert!(
        outcome.patient_failed.is_empty(),
        "{} of {} patient calls failed ({clogged} as Clogged); first: {:?}; {} calls dropped, stats {:?}",
        outcome.patient_failed.len(),
        outcome.patient_failed.len() as u64 + outcome.patient_ok,
        outcome.patient_failed.first(),
        outcome.impatient_dropped,
        client.stats()
    );
    assert!(outcome.patient_ok > 0, "{outcome:?}");
    client.close();
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Counters are exact
// ---------------------------------------------------------------------------

/// `stats().succeeded` counts the replies delivered to a waiting caller,
/// and nothing else: a reply whose caller has dropped its call is late, not
/// a success.
///
/// A cancellation storm runs for 1.5 s against a quick handler (0–2 ms), so
/// that many replies arrive just as their callers give up; every result a
/// caller actually received is counted. Once every call is done and the late
/// replies have come in (the counters stop moving), the client's count must
/// equal ours. The runtime has two workers, as a caller dropping its call on
/// one thread while the client handles its reply on another is the race
/// that matters: a reply handed over after its caller dropped the call was
/// not delivered. Counting where the client hands a reply over (a oneshot
/// send that succeeds) is not exact either: the caller may drop the call
/// just after, with the reply unread inside it. Counting where the caller
/// takes the answer is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeded_counts_only_replies_delivered_to_callers() {
    let (server, addr) = start(ServerOptions::default(), brisk);
    let client = new_client(addr, quiet_client_options());
    let outcome = storm(&client, ms(1500), 16, 4).await;
    let received = outcome.impatient_ok + outcome.patient_ok;
    // Settle: the counters stay still for half a second.
    let mut last = client.stats();
    let mut still_since = Instant::now();
    let settling = Instant::now();
    while still_since.elapsed() < ms(500) {
        assert!(settling.elapsed() < GENEROUS, "the counters never settled");
        sleep(ms(20)).await;
        let now = client.stats();
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    assert_eq!(
        last.succeeded,
        received,
        "the client counted {} successes, callers received {} ({} + {} patient); \
         {} calls dropped; stats {:?}",
        last.succeeded,
        received,
        outcome.impatient_ok,
        outcome.patient_ok,
        outcome.impatient_dropped,
        last
    );
    client.close();
    server.shutdown().await;
}

/// A CALL message arriving at a client (servers do not call their clients
/// on this transport) is counted in `unexpected_calls`, and the connection
/// goes on: the reply that follows it reaches its caller.
///
/// A raw peer reads the client's call, sends it a CALL message, then the
/// call's reply (MSG_ACCEPTED, SUCCESS, same XID).
#[tokio::test]
async fn a_call_from_the_server_is_counted_as_unexpected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = Endpoint::from(listener.local_addr().unwrap());
    let peer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(stream, RpcCodec::default());
        let call = framed.next().await.unwrap().unwrap().unwrap();
        let MessageBody::Call { args, .. } = call.body else {
            panic!("expected a call: {call:?}")
        };
        let stray = Message::call(
            call.xid.wrapping_add(1000),
            CallHeader::new(PROG, 1, 1),
            Bytes::from_static(b"stray"),
        );
        framed.send(stray).await.unwrap();
        let reply = Message::reply(call.xid, ReplyBody::accepted(AcceptStatus::Success), args);
        framed.send(reply).await.unwrap();
        // Hold the connection until the client closes it.
        while framed.next().await.is_some() {}
    });
    let client = new_client(addr, quiet_client_options());
    let out = timeout(GENEROUS, client.call(PROG, 1, 1, Bytes::from_static(b"ok")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&out[..], b"ok");
    let counted = held_within(Instant::now(), ms(2000), || {
        client.stats().unexpected_calls >= 1
    })
    .await;
    let stats = client.stats();
    assert!(counted.is_some(), "{stats:?}");
    assert_eq!(stats.unexpected_calls, 1, "{stats:?}");
    assert_eq!(stats.succeeded, 1, "{stats:?}");
    client.close();
    timeout(GENEROUS, peer).await.unwrap().unwrap();
}
