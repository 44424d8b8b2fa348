//! Pure per-connection state: the client's call table, liveness and
//! reconnect decisions and its verdict on a HELLO reply, the server
//! connection with its HELLO gate and timers, and write batching. No
//! tokio, no sockets: time is passed in and decisions come out, in the
//! manner of quinn-proto, so that fuzzers and property tests drive them
//! directly.
//!
//! The drivers in [`crate::client`] and [`crate::server`] run one task per
//! connection that moves bytes between the socket and these types and arms
//! one timer from their deadlines.
//!
//! These are internals: tests and fuzz targets reach them through the
//! hidden `peerwire::internals` path; they are not public API.

pub mod calls;
pub mod hello_gate;
pub mod hello_reply;
pub mod liveness;
pub mod outbox;
pub mod reconnect;
pub mod registry;
pub mod server;
pub mod starttls;

pub use calls::{CallStats, CallTable, Failed, ReplyFor};
pub use hello_reply::{HelloAccepted, HelloExpected, HelloFault, judge_hello_reply};
pub use liveness::{Liveness, LivenessAction};
pub use outbox::Outbox;
pub use reconnect::{Breaker, Reconnect};
pub use registry::Registry;
pub use server::{Dispatch, Dropped, Expired, Inbound, ServeStats, ServerConnection};
