//! # Calls: a client and a server
//!
//! A [`Server`](crate::Server) serves one [`Service`](crate::Service) per
//! (program, version); a [`Client`](crate::Client) is a cheap, cloneable
//! handle to one connection to one peer, with many calls in flight on it,
//! matched by XID.
//!
//! ```
//! use bytes::Bytes;
//! use peerwire::{CallContext, CallOptions, Client, ClientOptions, Endpoint, ProcError, Server,
//!                ServerOptions};
//!
//! const ECHO: u32 = 0x2000_0001;
//!
//! async fn echo(ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
//!     // ctx.observed is the caller's address as this server saw it.
//!     assert_eq!(ctx.observed.ip().to_string(), "127.0.0.2");
//!     match procedure {
//!         1 => Ok(args),
//!         _ => Err(ProcError::ProcUnavail),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! let server = Server::new(ServerOptions::default())
//!     .service(ECHO, 1, echo)
//!     .serve(&["127.0.0.1:0".parse()?])?;
//! let address = Endpoint::from(server.local_addrs()[0]);
//!
//! let options = ClientOptions::default().with_source("127.0.0.2".parse::<peerwire::ScopedIp>()?);
//! let client = Client::new(vec![address], options)?;
//! let reply = client.call(ECHO, 1, 1, Bytes::from_static(b"hello")).await?;
//! assert_eq!(&reply[..], b"hello");
//!
//! // NULL (procedure 0) is answered by the server for every registered program.
//! client.null(ECHO, 1).await?;
//! // Per-call options: a deadline of its own, a credential.
//! let options = CallOptions { deadline: Some(std::time::Duration::from_secs(1)), ..CallOptions::default() };
//! client.call_with(ECHO, 1, 1, Bytes::from_static(b"again"), &options).await?;
//!
//! let stats = client.stats();
//! assert_eq!((stats.sent, stats.succeeded), (3, 3));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## The client
//!
//! [`Client::new`](crate::Client::new) returns an error for an empty
//! destination list. The client connects on the first call, or up front
//! with [`Client::connect`](crate::Client::connect), which returns the
//! connect (or HELLO) error. Its options are in
//! [`options`](super::options#clientoptions).
//!
//! - **Cancellation.** Every call method ([`call`](crate::Client::call),
//!   [`call_with`](crate::Client::call_with),
//!   [`call_xdr`](crate::Client::call_xdr),
//!   [`call_proc`](crate::Client::call_proc),
//!   [`null`](crate::Client::null)) and [`connect`](crate::Client::connect)
//!   is cancel-safe: dropping a call's future at any point leaves the
//!   connection in sync. Callers queue whole records only, and a record
//!   queued is written whole.
//! - **The slot rule.** A call holds one of `max_in_flight` slots from
//!   the moment it is queued until its XID is free. A call that timed out,
//!   or whose caller dropped it, keeps its XID reserved *and its slot*
//!   until its late reply comes or the connection closes; new calls wait
//!   for a slot. So callers that give up can never crowd out, or tear down
//!   the connection under, callers that do not. The connection is closed
//!   ([`DisconnectCause::Clogged`](crate::DisconnectCause::Clogged)) only
//!   when no call is live and every slot has been held by unanswered
//!   reservations for a whole `ping_timeout`: that fails nobody's call, and
//!   frees the slots for the callers waiting.
//! - **`sent` is exact.** When the connection drops, every pending call
//!   fails at once with
//!   [`Error::Disconnected { sent, cause, .. }`](crate::Error::Disconnected).
//!   `sent: false` means none of the request's bytes reached the kernel:
//!   safe to retry. `sent: true` means some did: it may have run. A call
//!   past its deadline is [`Error::CallTimeout`](crate::Error::CallTimeout),
//!   with `sent` in the same sense.
//! - [`Client::state`](crate::Client::state) and
//!   [`Client::stats`](crate::Client::stats) show what it is doing: `sent`
//!   (requests with a byte written), `succeeded`, `failed` and `timed_out`
//!   (outcomes delivered to a waiting caller), `late_replies`,
//!   `unknown_replies`, `unexpected_calls` (CALL messages from the server,
//!   dropped) and `reconnects`.
//!   [`Client::with_transport`](crate::Client::with_transport) runs over any
//!   byte stream.
//!
//! A call the server takes too long over times out, written (`sent`), and
//! its slot stays held until the late reply comes:
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use peerwire::{CallOptions, Client, ClientOptions, Endpoint, Error, Server, ServerOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! let server = Server::new(ServerOptions { shutdown_grace: Duration::ZERO, ..ServerOptions::default() })
//!     .service(0x2000_0002, 1, |_ctx, _procedure, args: Bytes| async move {
//!         tokio::time::sleep(Duration::from_millis(200)).await;
//!         Ok(args)
//!     })
//!     .serve(&["127.0.0.1:0".parse()?])?;
//! let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
//!
//! let hurried = CallOptions { deadline: Some(Duration::from_millis(20)), ..CallOptions::default() };
//! match client.call_with(0x2000_0002, 1, 1, Bytes::new(), &hurried).await {
//!     Err(Error::CallTimeout { sent, .. }) => assert!(sent, "written, so it may have run"),
//!     other => panic!("expected a timeout, got {other:?}"),
//! }
//! // The late reply frees the XID and the slot; the next call goes on as usual.
//! client.call(0x2000_0002, 1, 1, Bytes::new()).await?;
//! assert_eq!(client.stats().timed_out, 1);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## The server
//!
//! `Server::new(options).service(program, version, handler).serve(&addresses)`:
//! NULL is answered for every registered program; an unknown program gets
//! PROG_UNAVAIL, an unknown version PROG_MISMATCH with the versions served,
//! `rpcvers` other than 2 RPC_MISMATCH, a malformed call header or
//! arguments over the limit GARBAGE_ARGS, and a handler that panics
//! SYSTEM_ERR (the connection lives on), also when its future panics as it
//! is dropped (its in-progress slot is freed). A handler refuses a caller's
//! credentials with [`ProcError::AuthError`](crate::ProcError::AuthError),
//! answered MSG_DENIED/AUTH_ERROR as libtirpc's `svcerr_auth` does.
//!
//! A handler whose future is ready at its first poll is answered inline;
//! one that is not runs as its own task, so calls on one connection run
//! concurrently and are answered in any order. Arguments up to 1 KiB are
//! copied out of the read buffer (into a reused arena, so this costs no
//! allocation), so a handler that keeps them does not pin it. The options
//! are in [`options`](super::options#serveroptions).
//!
//! ### A service on a struct of your own
//!
//! A closure `Fn(CallContext, u32, Bytes) -> impl Future` is a service.
//! State that the procedures share goes in a type of your own, which
//! implements [`Service`](crate::Service). Its future must be `'static`
//! (the server may run it as a task of its own), so it cannot borrow
//! `&self`: keep the state behind an `Arc` *inside* your type and clone the
//! `Arc` into the future.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use bytes::Bytes;
//! use peerwire::{CallContext, Client, ClientOptions, Endpoint, HandlerFuture, ProcError, Server,
//!                ServerOptions, Service};
//!
//! /// What the procedures share.
//! #[derive(Default)]
//! struct Counter {
//!     calls: Mutex<u64>,
//! }
//!
//! /// The service: our own type, holding the state in an `Arc`.
//! #[derive(Clone, Default)]
//! struct CounterService(Arc<Counter>);
//!
//! impl Service for CounterService {
//!     fn call(&self, _ctx: CallContext, procedure: u32, _args: Bytes) -> HandlerFuture {
//!         let state = self.0.clone(); // the future owns its handle: no borrow of `self`
//!         Box::pin(async move {
//!             match procedure {
//!                 1 => {
//!                     let mut calls = state.calls.lock().unwrap();
//!                     *calls += 1;
//!                     Ok(Bytes::copy_from_slice(&calls.to_be_bytes()))
//!                 }
//!                 _ => Err(ProcError::ProcUnavail),
//!             }
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! let service = CounterService::default();
//! let server = Server::new(ServerOptions::default())
//!     .service(0x2000_0003, 1, service.clone())
//!     .serve(&["127.0.0.1:0".parse()?])?;
//! let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
//! client.call(0x2000_0003, 1, 1, Bytes::new()).await?;
//! let reply = client.call(0x2000_0003, 1, 1, Bytes::new()).await?;
//! assert_eq!(&reply[..], &2u64.to_be_bytes());
//! assert_eq!(*service.0.calls.lock().unwrap(), 2);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! **The orphan-rule trap.** Implementing `Service` for `Arc<Counter>`
//! directly does not compile: `Service` is peerwire's trait and `Arc` is
//! std's type, so neither is local to your crate (Rust's orphan rule,
//! E0117). Wrap the `Arc` in a type of your own, as above.
//!
//! ```compile_fail
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use peerwire::{CallContext, HandlerFuture, Service};
//!
//! struct Counter;
//!
//! impl Service for Arc<Counter> {
//!     fn call(&self, _ctx: CallContext, _procedure: u32, _args: Bytes) -> HandlerFuture {
//!         Box::pin(async { Ok(Bytes::new()) })
//!     }
//! }
//! ```
//!
//! A program version with typed arguments and results is simpler still as
//! a [`server::Program`](crate::server::Program), whose `dispatch` is an
//! `async fn` on your own type (no box, no `Arc` needed for the future):
//! see [`typed`](super::typed).
//!
//! ### Handlers that block
//!
//! The cooperative budget below cannot bound a handler that blocks its
//! thread (`std::thread::sleep`, blocking I/O): that stalls its runtime
//! worker. Run such work with `tokio::task::spawn_blocking`, as the
//! [`Service`](crate::Service) docs show.
//!
//! ### What one connection can take per poll
//!
//! Each connection's task, on the server and on the client, charges every
//! record it handles (a call dispatched or answered inline, a NULL before
//! HELLO, a reply delivered) and every read and write to tokio's
//! cooperative budget (`tokio::task::coop`: 128 units per task poll). When
//! the budget is spent the task leaves the records it has not handled in
//! its buffer, in order, and yields; tokio runs its I/O and timer drivers
//! and the other tasks before polling it again. So one connection handles
//! at most 128 records per poll however fast its peer pipelines, and
//! replies (server) or calls (client) left unwritten go out first at the
//! next poll. `BENCHMARKS.md` ("Fairness") has the figures.
//!
//! ### Memory follows bytes received
//!
//! A record header alone reserves nothing, whatever length it announces; a
//! record's buffer is never sized more than 16 times ahead of the bytes of
//! it received (so a large record is not copied over and over while its
//! buffer grows). A record of one fragment is handed out without a copy,
//! one of several is copied once as it arrives. The fragments of a record
//! are bounded by their overhead, not a flat count: `max_fragments`
//! (4,096) plus one per 64 bytes of data, so libtirpc's 1 MiB call in
//! 96-byte fragments (10,924 of them) is accepted and a flood of empty
//! fragments is not.
//!
//! ### Running and stopping
//!
//! [`Server::serve`](crate::Server::serve) returns a
//! [`RunningServer`](crate::RunningServer).
//! [`shutdown().await`](crate::RunningServer::shutdown) stops it gracefully
//! (stop accepting, stop reading new calls, let calls in progress finish
//! within `shutdown_grace`, close) and returns when every connection is
//! closed. [`stopper()`](crate::RunningServer::stopper) gives a cloneable
//! [`Stopper`](crate::Stopper) whose `stop()` starts the same from anywhere
//! (a signal handler), while another task awaits
//! [`wait()`](crate::RunningServer::wait). **Dropping a `RunningServer`
//! does not stop the server**: it runs until stopped or until the runtime
//! ends.
//!
//! ```
//! use peerwire::{Server, ServerOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! let server = Server::new(ServerOptions::default()).serve(&["127.0.0.1:0".parse()?])?;
//! let stopper = server.stopper();
//! tokio::spawn(async move {
//!     // In a real daemon: tokio::signal::ctrl_c().await
//!     stopper.stop();
//! });
//! server.wait().await; // returns once the server has stopped
//! # Ok(())
//! # }
//! ```
