//! The server's counters, and the snapshot a user reads.

use std::sync::atomic::AtomicU64;

/// Counters of a running server.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) accepted: AtomicU64,
    pub(super) closed: AtomicU64,
    pub(super) calls: AtomicU64,
    pub(super) panics: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) bad_framing: AtomicU64,
    pub(super) closed_before_hello: AtomicU64,
    pub(super) handshake_timeouts: AtomicU64,
}

/// A snapshot of a server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed.
    pub closed: u64,
    /// Calls dispatched to handlers.
    pub calls: u64,
    /// Handlers that panicked, when called, polled or dropped (answered
    /// with SYSTEM_ERR).
    pub panics: u64,
    /// Records dropped without an answer.
    pub dropped: u64,
    /// Connections refused by admission, closed unread.
    pub refused: u64,
    /// Connections closed for failing the handshake: a refused HELLO, a
    /// call before HELLO, or a second HELLO with another node ID.
    pub rejected: u64,
    /// Connections closed because their record marking broke: a record
    /// over a limit (the pre-HELLO one included), or a stream that ended
    /// inside a record. Counted (and logged at warn) on every connection,
    /// with or without an identity.
    pub bad_framing: u64,
    /// Connections (with an identity) the peer closed before a successful
    /// HELLO.
    pub closed_before_hello: u64,
    /// Connections closed at the handshake timeout.
    pub handshake_timeouts: u64,
}
