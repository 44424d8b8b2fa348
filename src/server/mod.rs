//! The RPC server: listeners, one task per connection, handlers.
//!
//! A connection's one task reads records while fewer than
//! [`ServerOptions::max_in_progress`] calls are in progress and its replies
//! are not piling up unwritten; otherwise it stops reading, so TCP pushes
//! back on the peer. Its timers (HELLO, idle, write stall, shutdown grace)
//! run in the same poll, whatever the peer does. A handler whose future is
//! ready at its first poll is answered inline, without a task; one that is
//! not is spawned, so calls on one connection run concurrently and may
//! finish in any order. A panicking handler (one whose future panics when
//! polled, or when dropped) is answered with SYSTEM_ERR, its slot is
//! freed, and the connection and its other calls live on. Replies are
//! encoded into one outbox and written in batches of whole records.
//!
//! A connection's task is fair to the others on its runtime: each record it
//! takes (like each read and write) costs a unit of tokio's cooperative
//! budget ([`tokio::task::coop`], 128 units a poll), and once the budget is
//! spent it yields, the records left waiting in its buffer in order. So one
//! connection answers at most 128 calls (inline answers included) per poll,
//! however fast its peer pipelines them, and a peer flooding NULL calls
//! delays the others by no more than one such poll at a time. What the
//! budget cannot bound is a handler that blocks its thread: see [`Service`].
//!
//! Shutdown order: stop accepting; stop reading new calls; let calls in
//! progress finish within the grace period; close.

mod accept;
mod connection;
mod handler;
mod options;
mod program;
mod running;
mod serve;
mod service;
mod stats;
mod unix;
mod verdicts;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::watch;

pub use self::options::ServerOptions;
use self::program::Handler;
pub use self::program::{Call, Program};
pub use self::running::{RunningServer, Stopper};
pub use self::serve::Server;
pub use self::service::{CallContext, HandlerFuture, ProcError, Service};
use self::stats::Counters;
pub use self::stats::ServerStats;
pub use self::verdicts::{
    ConnectionInfo, VERDICTS_KEPT, VERDICTS_PER_SOURCE, Verdict, VerdictReason,
};
use crate::conn::Registry;
use crate::peer::{Admission, ServerIdentity, UnixAdmission};

/// Who may connect and as whom: what [`RunningServer::update`] (and
/// [`RunningServer::update_tls`]) replace.
#[derive(Debug)]
struct Policy {
    admission: Admission,
    identity: Option<Arc<ServerIdentity>>,
    unix_admission: UnixAdmission,
    /// What every connection's rustls configuration shares, built from
    /// [`ServerOptions::tls`] or the latest [`RunningServer::update_tls`].
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::ServerShared>>,
}

/// What every task of a running server shares: the services, the
/// options, the policy in force, the counters and the lists.
struct Shared {
    registry: Registry,
    /// Few enough to search in order, faster per call than a map.
    services: Vec<((u32, u32), Handler)>,
    options: ServerOptions,
    /// The admission lists and identity now; connections watch it.
    policy: watch::Sender<Arc<Policy>>,
    counters: Counters,
    connections: std::sync::Mutex<HashMap<u64, ConnectionInfo>>,
    verdicts: std::sync::Mutex<std::collections::VecDeque<Verdict>>,
    /// Connection ids: a random start, then a counter, so ids from two
    /// servers (or two runs) are not easily confused in logs.
    next_id: AtomicU64,
    /// Connections run TLS before any RPC (fixed for the server's life;
    /// the material itself is in the policy).
    tls_on: bool,
}

impl Shared {
    /// True when connections run TLS before any RPC.
    fn tls_on(&self) -> bool {
        self.tls_on
    }
}
