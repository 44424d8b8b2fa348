//! No cross-talk: a reply reaches the caller it was for, or nobody.
//!
//! A property test drives a [`Client`] over an in-memory duplex against a
//! scripted server, in paused tokio time (sleeps are free and every run is
//! exact to the millisecond). Each call's arguments carry a token (the
//! caller's index); the server answers with the token of the call it
//! answers. The script decides, per call: answer now, later (possibly after
//! the caller's deadline or after the caller dropped its future), never, or
//! with SYSTEM_ERR; send the answer twice; and it injects replies with XIDs
//! the client never used. Callers have their own deadlines and some drop
//! their future mid-call. Every caller must get its own token or an error,
//! never another's; every call answered in time must succeed; and the
//! client's counters must add up with what the server wrote
//! (no_crosstalk/property.rs).
//!
//! Then deterministic tests (no_crosstalk/deterministic.rs): a late reply never reaches a newer call, also
//! with the one-slot pressure of `max_in_flight = 1`; answered pings keep a
//! slow call alive; unanswered pings end the connection.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

#[path = "no_crosstalk/deterministic.rs"]
mod deterministic;
#[path = "no_crosstalk/property.rs"]
mod property;

use std::net::SocketAddr;

use bytes::Bytes;
use peerwire::Endpoint;
use peerwire::client::DEFAULT_PING_PROGRAM;
use peerwire::proto::{AcceptStatus, CallHeader, Message, ReplyBody};

const VERS: u32 = 1;
const PROC: u32 = 1;
/// The token an injected reply with an unknown XID carries: no caller has it.
const STRANGER: u64 = u64::MAX;

fn local() -> SocketAddr {
    "127.0.0.1:40001".parse().unwrap()
}

fn remote() -> SocketAddr {
    "127.0.0.1:40002".parse().unwrap()
}

fn peer() -> Endpoint {
    Endpoint::from(remote())
}

fn token_bytes(token: u64) -> Bytes {
    Bytes::copy_from_slice(&token.to_be_bytes())
}

fn success(xid: u32, results: Bytes) -> Message {
    Message::reply(xid, ReplyBody::accepted(AcceptStatus::Success), results)
}

fn is_ping(header: &CallHeader) -> bool {
    (header.program, header.version) == DEFAULT_PING_PROGRAM && header.procedure == 0
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}
