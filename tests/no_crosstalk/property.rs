//! The property test: a script (what the server does with each call, and
//! the replies it injects), the scripted server, the callers, and the
//! checks that every caller got its own reply or an error and that the
//! counters add up.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::RpcCodec;
use peerwire::proto::{AcceptStatus, Message, MessageBody, ReplyBody};
use peerwire::{CallOptions, CallStatus, Client, ClientOptions, DisconnectCause, Error, Link};
use proptest::prelude::*;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{
    PROC, STRANGER, VERS, is_ping, local, paused_runtime, peer, remote, success, token_bytes,
};
use crate::support::common::{PROG, ms};

/// When the server answers a call, counted from when it read the call.
#[derive(Clone, Copy, Debug)]
enum Answer {
    After(u64),
    Never,
}

/// One caller and what the server does with its call. Times in ms.
#[derive(Clone, Debug)]
struct CallPlan {
    /// When the caller starts, from the start of the run.
    start: u64,
    /// The call's deadline.
    deadline: u64,
    /// The caller drops its future this long after starting.
    drop_after: Option<u64>,
    answer: Answer,
    /// Answer SYSTEM_ERR instead of results.
    reject: bool,
    /// Send the answer again this long after the first.
    duplicate: Option<u64>,
}

#[derive(Clone, Debug)]
struct Script {
    calls: Vec<CallPlan>,
    /// Replies with XIDs the client never used: (when, which).
    unknown: Vec<(u64, u32)>,
    max_in_flight: usize,
    ping_interval: u64,
    /// The first connection's server hangs up at this time.
    hangup: Option<u64>,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => Just(Answer::After(0)),
        6 => (1u64..400).prop_map(Answer::After),
        1 => Just(Answer::Never),
    ]
}

fn call_plan() -> impl Strategy<Value = CallPlan> {
    (
        0u64..200,
        1u64..300,
        prop::option::weighted(0.25, 1u64..300),
        answer(),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.2, 0u64..300),
    )
        .prop_map(
            |(start, deadline, drop_after, answer, reject, duplicate)| CallPlan {
                start,
                deadline,
                drop_after,
                answer,
                reject,
                duplicate,
            },
        )
}

fn script() -> impl Strategy<Value = Script> {
    (
        prop::collection::vec(call_plan(), 1..50),
        prop::collection::vec((0u64..800, 0u32..1_000_000), 0..12),
        prop_oneof![Just(1usize), Just(2), Just(3), Just(8), Just(64)],
        prop_oneof![Just(20u64), Just(75), Just(500), Just(3_600_000)],
        prop::option::weighted(0.2, 0u64..400),
    )
        .prop_map(
            |(calls, unknown, max_in_flight, ping_interval, hangup)| Script {
                calls,
                unknown,
                max_in_flight,
                ping_interval,
                hangup,
            },
        )
}

/// What the server wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wrote {
    First { token: u64 },
    Duplicate,
    Unknown,
    Pong,
}

/// What the servers saw and did, for the checks at the end.
#[derive(Debug, Default)]
struct Log {
    /// Token → (connection, when it was read, XID).
    received: HashMap<u64, (usize, Instant, u32)>,
    pings: u64,
    /// (connection, when, what), for every record written.
    wrote: Vec<(usize, Instant, Wrote)>,
    /// Connection → when its server hung up.
    hangups: HashMap<usize, Instant>,
    /// Connection → when it ended: the server hung up, or the client closed
    /// it (the server reads at once, so it sees the close at that instant).
    ended: HashMap<usize, Instant>,
    /// Anything the client did wrong on the wire.
    problems: Vec<String>,
}

enum Out {
    Reply { message: Message, what: Wrote },
    Unknown(u32),
}

fn schedule(tx: &mpsc::UnboundedSender<Out>, at: Instant, out: Out) {
    if at <= Instant::now() {
        let _ = tx.send(out);
        return;
    }
    let tx = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        let _ = tx.send(out);
    });
}

async fn scripted_server(
    io: DuplexStream,
    conn: usize,
    script: Arc<Script>,
    log: Arc<Mutex<Log>>,
    t0: Instant,
) {
    let (rd, wr) = tokio::io::split(io);
    let mut reader = FramedRead::new(rd, RpcCodec::default());
    let mut writer = FramedWrite::new(wr, RpcCodec::default());
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    for &(at, which) in &script.unknown {
        schedule(&tx, t0 + ms(at), Out::Unknown(which));
    }
    let hangup_at = match (conn, script.hangup) {
        (0, Some(at)) => Some(t0 + ms(at)),
        _ => None,
    };
    let hangup = async move {
        match hangup_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(hangup);
    // The first XID seen: the client's XIDs count up from it, so XIDs half
    // the space away are ones the client has never used.
    let mut base: Option<u32> = None;
    let mut xids = HashSet::new();
    loop {
        tokio::select! {
            () = &mut hangup => {
                log.lock().unwrap().hangups.insert(conn, Instant::now());
                break;
            }
            item = reader.next() => {
                let message = match item {
                    Some(Ok(Ok(message))) => message,
                    Some(Ok(Err(error))) => {
                        log.lock().unwrap().problems.push(format!("malformed message: {error}"));
                        continue;
                    }
                    Some(Err(_)) | None => break,
                };
                let now = Instant::now();
                let xid = message.xid;
                let MessageBody::Call { header, args } = message.body else {
                    log.lock().unwrap().problems.push(format!("xid {xid}: a reply from the client"));
                    continue;
                };
                let mut log = log.lock().unwrap();
                if !xids.insert(xid) {
                    log.problems.push(format!("connection {conn}: xid {xid} used twice"));
                }
                base.get_or_insert(xid);
                if is_ping(&header) {
                    log.pings += 1;
                    let _ = tx.send(Out::Reply { message: success(xid, Bytes::new()), what: Wrote::Pong });
                    continue;
                }
                if (header.program, header.version, header.procedure) != (PROG, VERS, PROC) || args.len() != 8 {
                    log.problems.push(format!("xid {xid}: unexpected call {header:?} {args:?}"));
                    continue;
                }
                let token = u64::from_be_bytes(args[..].try_into().unwrap());
                if log.received.insert(token, (conn, now, xid)).is_some() {
                    log.problems.push(format!("token {token} received twice"));
                }
                let plan = &script.calls[token as usize];
                if let Answer::After(delay) = plan.answer {
                    let reply = if plan.reject {
                        Message::reply(xid, ReplyBody::accepted(AcceptStatus::SystemErr), Bytes::new())
                    } else {
                        success(xid, token_bytes(token))
                    };
                    let at = now + ms(delay);
                    schedule(&tx, at, Out::Reply { message: reply.clone(), what: Wrote::First { token } });
                    if let Some(again) = plan.duplicate {
                        schedule(&tx, at + ms(again), Out::Reply { message: reply, what: Wrote::Duplicate });
                    }
                }
            }
            Some(out) = rx.recv() => {
                let (message, what) = match out {
                    Out::Reply { message, what } => (message, what),
                    Out::Unknown(which) => match base {
                        Some(base) => (
                            success(base.wrapping_add(0x8000_0000).wrapping_add(which), token_bytes(STRANGER)),
                            Wrote::Unknown,
                        ),
                        // Before the first call there is no telling which
                        // XIDs are unused.
                        None => continue,
                    },
                };
                if writer.send(message).await.is_err() {
                    break;
                }
                log.lock().unwrap().wrote.push((conn, Instant::now(), what));
            }
        }
    }
    log.lock().unwrap().ended.insert(conn, Instant::now());
}

#[derive(Debug)]
enum Outcome {
    Returned(Result<Bytes, Error>),
    /// The caller dropped its future.
    Dropped,
}

#[derive(Debug)]
struct Finished {
    start: Instant,
    end: Instant,
    outcome: Outcome,
}

async fn caller(client: Client, token: u64, plan: CallPlan, t0: Instant) -> Finished {
    tokio::time::sleep_until(t0 + ms(plan.start)).await;
    let start = Instant::now();
    let options = CallOptions {
        deadline: Some(ms(plan.deadline)),
        ..CallOptions::default()
    };
    let call = client.call_with(PROG, VERS, PROC, token_bytes(token), &options);
    let outcome = match plan.drop_after {
        Some(after) => match tokio::time::timeout(ms(after), call).await {
            Ok(result) => Outcome::Returned(result),
            Err(_) => Outcome::Dropped,
        },
        None => Outcome::Returned(call.await),
    };
    Finished {
        start,
        end: Instant::now(),
        outcome,
    }
}

/// Every scheduled event is over by then.
const QUIET_AFTER: u64 = 5_000;

fn run_script(script: Script) -> Result<(), TestCaseError> {
    paused_runtime().block_on(async move {
        let t0 = Instant::now();
        let script = Arc::new(script);
        let log = Arc::new(Mutex::new(Log::default()));
        let connections = Arc::new(AtomicUsize::new(0));
        let options = ClientOptions {
            max_in_flight: script.max_in_flight,
            ping_interval: ms(script.ping_interval),
            ping_timeout: Duration::from_secs(36_000),
            backoff_base: ms(1),
            breaker_threshold: 1_000,
            ..ClientOptions::default()
        };
        let client = {
            let (script, log) = (script.clone(), log.clone());
            Client::with_transport(peer(), options, move || {
                let conn = connections.fetch_add(1, Ordering::Relaxed);
                let (ours, theirs) = tokio::io::duplex(1 << 20);
                tokio::spawn(scripted_server(
                    theirs,
                    conn,
                    script.clone(),
                    log.clone(),
                    t0,
                ));
                async move { Ok(Link::new(ours, local(), remote())) }
            })
        };
        let callers: Vec<_> = script
            .calls
            .iter()
            .enumerate()
            .map(|(token, plan)| {
                tokio::spawn(caller(client.clone(), token as u64, plan.clone(), t0))
            })
            .collect();
        let mut finished = Vec::new();
        for caller in callers {
            finished.push(caller.await.unwrap());
        }
        tokio::time::sleep_until(t0 + ms(QUIET_AFTER)).await;
        let stats = client.stats();
        client.close();
        let log = log.lock().unwrap();
        prop_assert!(log.problems.is_empty(), "{:?}", log.problems);

        let (mut oks, mut rejected, mut timeouts, mut timeouts_sent) = (0, 0, 0, 0);
        for (token, (plan, fin)) in script.calls.iter().zip(&finished).enumerate() {
            let token = token as u64;
            let deadline = fin.start + ms(plan.deadline);
            let drop_at = plan.drop_after.map(|after| fin.start + ms(after));
            let received = log.received.get(&token).copied();
            let first = log
                .wrote
                .iter()
                .find(|(_, _, what)| *what == Wrote::First { token })
                .map(|&(conn, at, _)| (conn, at));
            // The client read the answer strictly before the deadline,
            // before the caller gave up and before the server hung up: the
            // caller must have it (paused time: the client reads at the
            // instant the server writes).
            let in_time = first.is_some_and(|(conn, at)| {
                at < deadline
                    && drop_at.is_none_or(|drop_at| at < drop_at)
                    && log.ended.get(&conn).is_none_or(|&end| at < end)
            });
            let context = format!(
                "caller {token}: {plan:?}, {fin:?}, received {received:?}, answered {first:?}"
            );
            match &fin.outcome {
                Outcome::Returned(Ok(results)) => {
                    prop_assert_eq!(
                        &results[..],
                        &token.to_be_bytes()[..],
                        "cross-talk! {}",
                        context
                    );
                    prop_assert!(!plan.reject, "{}", context);
                    prop_assert!(first.is_some_and(|(_, at)| at <= fin.end), "{}", context);
                    prop_assert!(fin.end <= deadline, "{}", context);
                    oks += 1;
                }
                Outcome::Returned(Err(Error::CallRejected { status, .. })) => {
                    prop_assert_eq!(*status, CallStatus::SystemErr, "{}", context);
                    prop_assert!(plan.reject, "{}", context);
                    prop_assert!(first.is_some_and(|(_, at)| at <= fin.end), "{}", context);
                    prop_assert!(fin.end <= deadline, "{}", context);
                    rejected += 1;
                }
                Outcome::Returned(Err(Error::CallTimeout { after, sent, .. })) => {
                    prop_assert!(!in_time, "answered in time, yet timed out: {}", context);
                    prop_assert_eq!(*after, ms(plan.deadline), "{}", context);
                    prop_assert!(
                        fin.end >= deadline && fin.end <= deadline + ms(1),
                        "timed out at the wrong time: {}",
                        context
                    );
                    match received {
                        Some((_, at, _)) if at < deadline => {
                            prop_assert!(*sent, "read by the server, yet not sent: {}", context)
                        }
                        None if log.ended.is_empty() => {
                            prop_assert!(!*sent, "never read, yet sent: {}", context)
                        }
                        _ => {}
                    }
                    timeouts += 1;
                    timeouts_sent += u64::from(*sent);
                }
                Outcome::Returned(Err(Error::Disconnected { cause, sent, .. })) => {
                    prop_assert!(!in_time, "answered in time, yet disconnected: {}", context);
                    match cause {
                        DisconnectCause::Closed | DisconnectCause::Io(_) => {
                            prop_assert!(script.hangup.is_some(), "{}", context)
                        }
                        _ => prop_assert!(false, "{}", context),
                    }
                    prop_assert!(fin.end <= deadline, "{}", context);
                    // Every pending call fails at once, when its connection ends.
                    match received {
                        Some((conn, at, _)) => {
                            let end = log.ended.get(&conn).copied();
                            prop_assert_eq!(end, Some(fin.end), "{}", context);
                            if end.is_some_and(|end| at < end) {
                                prop_assert!(
                                    *sent,
                                    "read by the server, yet not sent: {}",
                                    context
                                );
                            }
                        }
                        None => prop_assert!(
                            log.ended.values().any(|&end| end == fin.end),
                            "no connection ended then: {}",
                            context
                        ),
                    }
                }
                Outcome::Returned(Err(error)) => {
                    prop_assert!(false, "unexpected error {error}: {}", context);
                }
                Outcome::Dropped => {
                    prop_assert!(!in_time, "answered in time, yet still waiting: {}", context);
                    prop_assert_eq!(Some(fin.end), drop_at, "{}", context);
                    prop_assert!(fin.end <= deadline, "{}", context);
                }
            }
        }

        let count =
            |f: fn(&Wrote) -> bool| log.wrote.iter().filter(|(_, _, w)| f(w)).count() as u64;
        let firsts = count(|w| matches!(w, Wrote::First { .. }));
        let duplicates = count(|w| *w == Wrote::Duplicate);
        let unknowns = count(|w| *w == Wrote::Unknown);
        let summary = format!(
            "{stats:?}; wrote {firsts} answers, {duplicates} duplicates, {unknowns} unknown; \
             read {} calls, {} pings; callers: {oks} ok, {rejected} rejected, {timeouts} timed out",
            log.received.len(),
            log.pings
        );
        prop_assert!(stats.succeeded >= oks, "{}", summary);
        prop_assert!(stats.timed_out >= timeouts_sent, "{}", summary);
        if log.ended.is_empty() {
            // One connection, which the client read to the end: every
            // record the server wrote is accounted for exactly once.
            prop_assert_eq!(stats.reconnects, 0, "{}", summary);
            prop_assert_eq!(stats.unknown_replies, duplicates + unknowns, "{}", summary);
            prop_assert_eq!(
                stats.succeeded + stats.failed + stats.late_replies,
                firsts,
                "{}",
                summary
            );
            prop_assert!(stats.failed >= rejected, "{}", summary);
            prop_assert_eq!(
                stats.sent,
                log.received.len() as u64 + log.pings,
                "{}",
                summary
            );
        } else {
            prop_assert!(
                stats.late_replies + stats.unknown_replies <= firsts + duplicates + unknowns,
                "{}",
                summary
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn every_caller_gets_its_own_reply_or_an_error(script in script()) {
        run_script(script)?;
    }
}
