//! The user's guide: how peerwire is used, chapter by chapter.
//!
//! This module holds no code. Each submodule is a chapter whose examples
//! run as doctests, on loopback (`127.0.0.1` with port 0) wherever no
//! real interface or peer is needed, so `cargo test --doc` keeps them
//! true. The reference for each type and option is on the item itself;
//! the chapters say how the pieces fit.
//!
//! | chapter | what it covers |
//! |---|---|
//! | [`options`] | connecting from a configured source, listening, and the tables of [`ConnectOptions`](crate::ConnectOptions), [`ListenOptions`](crate::ListenOptions), [`ClientOptions`](crate::ClientOptions) and [`ServerOptions`](crate::ServerOptions) |
//! | [`calls`] | a client and a server: calls, cancel-safety, the slot rule, `sent`, a [`Service`](crate::Service) on a struct of your own, handlers that block, fairness, memory, shutdown |
//! | [`typed`] | typed calls ([`Procedure`](crate::Procedure), [`Client::call_proc`](crate::Client::call_proc)), typed programs ([`server::Program`](crate::server::Program)), and programs compiled from rpcgen `.x` files |
//! | [`errors`] | the one error type: which variant when, and what to do |
//! | [`identity`] | peers known by the address the server observed: admission, HELLO, the peer table, changing the policy while running |
//! | [`tls`] | mutual TLS: certificates that must name the observed address and the claimed node ID; renewal and revocation |
//! | [`unix`] | the same RPC over Unix sockets, the peer known by its credentials |
//! | [`tracing`] | the spans every log event carries |
//! | [`wire`] | the wire format, and what it is checked against |
//!
//! Outside the crate docs: `BENCHMARKS.md` holds every measured figure
//! with the command that produces it, and `examples/peerd/README.md` is
//! the manual of the example peer daemon, peerd.

pub mod calls;
pub mod errors;
pub mod identity;
pub mod options;
pub mod tls;
pub mod tracing;
pub mod typed;
pub mod unix;
pub mod wire;
