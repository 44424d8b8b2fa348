//! # peerwire
//!
//! The RPC transport that cluster peers use to talk to each other: framed
//! ONC RPC (RFC 5531) over TCP, like GlusterFS's transport, with one promise
//! at its base: **every outgoing socket is bound to the configured source
//! address, or the connect fails with an error that names it.** It never
//! silently falls back to "any address", for IPv4 or IPv6, and it handles
//! link-local IPv6 sources with a scope (`fe80::a%eth0`), which GlusterFS
//! cannot bind and hyper and tonic cannot express.
//!
//! **The user's guide is [`guide`]**: connecting and the options, calls
//! (cancel-safety, the slot rule, `sent`), typed programs, errors,
//! identity, mutual TLS, Unix sockets and tracing, each chapter with
//! examples that run on loopback.
//!
//! ## Layers
//!
//! ```text
//!   peerd (examples/)     config, CLI, status: a user of the public API only
//!   ───────────────────────────────────────────────────────────────────────
//!   programs/             typed programs generated from .x files:       [programs]
//!                         portmap and GF-DUMP with their typed clients,
//!                         on top of the client as a user's program is
//!   client / server       tokio drivers: one task per connection per   [client], [server]
//!                         side (plus one for a handler that does not
//!                         finish at once); sockets, timers, wake-ups;
//!                         the RFC 9289 probe exchange before TLS
//!   + drive (internal)    what both drivers build on a stream: the
//!                         batching writer, the cooperative yield, the
//!                         one timer, the quiet clock
//!   conn (internal)       PURE per-connection state: call table,
//!                         liveness, reconnect, the server connection
//!                         with its HELLO gate and timers, write batching
//!   peer                  identity policy: admission, peer table, and   [peer]
//!                         the HELLO program's types and node ID (pure)
//!   xdrgen (feature)      the .x compiler that writes the programs and  [xdrgen]
//!                         HELLO's types; imports nothing else of the
//!                         crate
//!   proto/ + codec        PURE wire format: record marking, XDR,       [proto], [codec]
//!                         RPC messages, credentials; Limits and
//!                         Procedure beside it
//!   stream / tls          the byte transport: a TCP, Unix or TLS       [tls]
//!                         stream and what it says about the peer (its
//!                         certificate); certificate rules (pure); TLS
//!                         returns its own TlsError
//!   connect / listen      the sockets: source selection and binding,   [connect], [listen]
//!   + sock (internal)     ports, Happy Eyeballs, listeners; every raw
//!                         socket option, and the peer credentials
//!                         (`SO_PEERCRED`) of a Unix socket
//!   addr                  addresses, scopes, families,                 [addr]
//!                         canonical comparison (pure; imports nothing
//!                         else of the crate)
//! ```
//!
//! A layer uses only the layers below it. [`Error`], the one error type
//! of the public API, names what every layer knows (addresses, node IDs,
//! RPC statuses, TLS failures), so it belongs with the drivers: `addr` and
//! `tls` report their own errors ([`AddrParseError`], [`tls::TlsError`]),
//! which [`Error`] converts from. `sock` makes the system calls and
//! returns `io::Error`; `connect` and `listen` return [`Error`], through
//! its address, configuration and OS-error variants only: a socket error
//! type of their own would be the same variants again, wrapped once more
//! by every caller.
//! All raw socket code and `cfg(target_os)` sit in one private module
//! under `connect` and `listen`; the crate has no `unsafe`
//! (`#![forbid(unsafe_code)]`: nix makes the system calls). [`proto`] and
//! the connection state are pure: no tokio, no sockets, time passed in, so
//! fuzzers and property tests drive them directly (the state machines
//! through the hidden `internals` path: they are not public API).
//!
//! ## What exists so far
//!
//! - [`ScopedIp`] and [`Endpoint`]: parse and display `192.0.2.10`,
//!   `[2001:db8::10]:24007`, `fe80::a%eth0`, `[fe80::a%3]:24007`.
//! - [`Sources`]: one source per family; the destination's family selects
//!   it, under a [`FamilyPolicy`].
//! - [`Connector`]: binds the source by a [`PortPolicy`] (ephemeral with
//!   `IP_BIND_ADDRESS_NO_PORT`, a range, or privileged ports), checks
//!   `getsockname` after connecting, and races several destinations by
//!   Happy Eyeballs (RFC 8305).
//! - [`listen()`]: listeners with `IPV6_V6ONLY` always explicit.
//! - [`Address`]: an [`Endpoint`] or a Unix socket path,
//!   `unix:/run/x.socket`; [`listen_unix()`] places a socket file with an
//!   explicit mode, replaces a stale one and never takes a live one;
//!   [`Client::unix`] and [`Server::serve_on`] run the same RPC over it,
//!   with the peer known by its [`PeerCredentials`] and admitted by
//!   [`UnixAdmission`].
//! - [`CanonicalIp`]: the form in which observed addresses are compared.
//! - [`proto`]: record marking with limits checked before allocation, XDR,
//!   ONC RPC v2 calls and replies, AUTH_SYS and GlusterFS credentials.
//! - [`codec::RpcCodec`]: the tokio-util codec over them.
//! - [`Client`]: many calls in flight on one connection, matched by XID,
//!   with deadlines, in-flight slots, heartbeats, reconnect with backoff
//!   and a circuit breaker; cancel-safe calls that reach the socket without
//!   a task hand-off; `sent` exact to the byte.
//! - [`Procedure`] and [`Client::call_proc`]: typed calls, as fast as raw
//!   ones: arguments encoded straight into the connection's write buffer,
//!   results' `opaque` and `string` data ([`proto::xdr::XdrString`]) left
//!   in the received record.
//! - [`Server`]: services per (program, version), NULL and the RPC error
//!   replies answered for you, handlers answered inline when they finish at
//!   once and run concurrently when not, backpressure at the per-connection
//!   limit, connection limit, HELLO, idle and write timeouts kept whatever
//!   the peer does, graceful shutdown.
//! - [`Limits`]: argument and result sizes, checked before allocating.
//! - [`peer`]: node IDs, peer tables, admission lists and the HELLO
//!   handshake, checked against the observed address in both directions.
//! - [`programs`]: typed XDR for the portmapper and GlusterFS's GF-DUMP.
//! - [`Error`]: one error type; every variant names its addresses.
//! - [`tls`] (feature `tls`, on by default): mutual TLS, from the first
//!   byte or by RFC 9289's STARTTLS, whose certificates must name the
//!   observed (server) or dialled (client) address, and whose CN must be
//!   the node ID claimed in HELLO.
//!
//! ## Identity
//!
//! A peer is who the address the server *observed* says it is. With
//! [`ServerOptions::identity`] set, a server admits connections by address
//! ([`Admission`], before a byte is read), then requires a HELLO (program
//! `0x2050_5752`, see [`peer::hello`] for the XDR layout) whose claimed
//! [`NodeId`] must be allowed from the observed address in its
//! [`PeerTable`]. The server answers with its own node ID and the address
//! it observed; with [`ClientOptions::identity`] set, the client checks
//! that the node is the one it meant to reach and that the observed address
//! is the source it bound, so NAT or a silently unused source shows up.
//! Addresses are compared canonically: IPv4-mapped IPv6 as IPv4, and the
//! scope (the receiving interface) only for link-local addresses.
//!
//! **The limit of this model:** an address is not a secret. Anyone who can
//! forge a source address on the link, or controls a router on the path,
//! can claim that address and the identity bound to it. Admission lists
//! narrow who can try; closing the gap takes cryptography: mutual TLS whose
//! certificates name the peer's IP address, checked against the observed
//! address in the same way.
//!
//! On a Unix socket there is no address: the peer is the process whose
//! credentials (`SO_PEERCRED`: uid, gid, pid) the kernel reports, which
//! it cannot forge. The socket file's mode decides who may connect at all,
//! [`UnixAdmission`] judges the credentials before a byte is read, and
//! handlers see them in [`CallContext::credentials`]. The HELLO gate and
//! the peer table, which bind node IDs to addresses, do not apply there.
//!
//! ## The wire: record marking (RFC 5531 §11)
//!
//! Each RPC message is one *record*, sent as one or more *fragments*, each
//! behind a 4-byte big-endian header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-------------------------------------------------------------+
//! |L|              fragment length (31 bits, 0 to 2^31-1)         |
//! +-+-------------------------------------------------------------+
//! |                 fragment data (length bytes) ...              |
//! +---------------------------------------------------------------+
//!
//! L = 1 on the last fragment of the record
//! ```
//!
//! Decoding a record and its message; a single-fragment record is a slice
//! of the read buffer, not a copy:
//!
//! ```
//! use bytes::BytesMut;
//! use peerwire::proto::{Message, MessageBody, RecordDecoder, RecordLimits};
//!
//! // A NULL call to the portmapper (100000 v2), as rpcinfo sends it.
//! let mut wire = BytesMut::from(&[
//!     0x80, 0, 0, 40,             // last fragment, 40 bytes
//!     0x12, 0x34, 0x56, 0x78,     // xid
//!     0, 0, 0, 0,                 // CALL
//!     0, 0, 0, 2,                 // rpcvers 2
//!     0, 1, 0x86, 0xa0,           // program 100000
//!     0, 0, 0, 2,                 // version 2
//!     0, 0, 0, 0,                 // procedure 0 (NULL)
//!     0, 0, 0, 0, 0, 0, 0, 0,     // cred: AUTH_NONE, empty
//!     0, 0, 0, 0, 0, 0, 0, 0,     // verf: AUTH_NONE, empty
//! ][..]);
//! let mut records = RecordDecoder::new(RecordLimits::default());
//! let record = records.decode(&mut wire)?.expect("a whole record");
//! let message = Message::decode(record)?;
//! assert_eq!(message.xid, 0x1234_5678);
//! let MessageBody::Call { header, args } = &message.body else { panic!("not a call") };
//! assert_eq!((header.program, header.version, header.procedure), (100_000, 2, 0));
//! assert!(args.is_empty());
//! # Ok::<(), peerwire::proto::DecodeError>(())
//! ```
//!
//! ## A server and a call
//!
//! ```
//! use bytes::Bytes;
//! use peerwire::{CallContext, Client, ClientOptions, Endpoint, ProcError, Server, ServerOptions};
//!
//! const ECHO: u32 = 0x2000_0001;
//!
//! async fn echo(_ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
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
//! let client = Client::new(vec![address], ClientOptions::default())?;
//! let reply = client.call(ECHO, 1, 1, Bytes::from_static(b"ping")).await?;
//! assert_eq!(&reply[..], b"ping");
//!
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Binding a source
//!
//! A listener on loopback, and a connection to it from the source
//! `127.0.0.1`; the listener observes exactly that source.
//!
//! ```
//! use peerwire::{ConnectOptions, Connector, ListenOptions, ScopedIp, Sources, listen};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = listen(&"127.0.0.1:0".parse()?, &ListenOptions::default())?;
//! let port = listener.local_addr()?.port();
//!
//! let connector = Connector::new(ConnectOptions {
//!     sources: Sources::new().with("127.0.0.1".parse::<ScopedIp>()?),
//!     ..ConnectOptions::default()
//! });
//! let connected = connector.connect(&format!("127.0.0.1:{port}").parse()?).await?;
//! let (_stream, observed) = listener.accept().await?;
//!
//! assert_eq!(observed, connected.local_addr());
//! assert_eq!(observed.ip().to_string(), "127.0.0.1");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Without `tls`, the docs' links to TLS-only items (`TlsMode`,
// `update_tls`, ...) cannot resolve; the default build checks every link.
#![cfg_attr(not(feature = "tls"), allow(rustdoc::broken_intra_doc_links))]

pub mod addr;
pub mod client;
pub mod codec;
mod conn;
pub mod connect;
mod drive;
mod error;
pub mod guide;
mod limits;
pub mod listen;
pub mod peer;
mod procedure;
pub mod programs;
pub mod proto;
pub mod server;
mod sock;
mod stream;
pub mod tls;
#[cfg(feature = "xdrgen")]
pub mod xdrgen;

/// Internals that tests and fuzz targets drive directly: the pure
/// per-connection state machines and the address helpers behind the
/// connector. Not public API: no stability promise of any kind.
#[doc(hidden)]
pub mod internals {
    pub use crate::conn::*;
    pub use crate::connect::{check_scope, interleave, select_source};
}

pub use addr::{
    AddrParseError, AddrParseErrorKind, Address, CanonicalIp, Endpoint, Family, FamilyPolicy, Role,
    Scope, ScopedIp, Sources,
};
/// The `bytes` crate, whose `Bytes` generated code and typed procedures use.
pub use bytes;
pub use client::{
    CallOptions, Client, ClientIdentity, ClientOptions, ClientStats, ConnectionState, Link,
    MismatchPolicy,
};
pub use connect::{ConnectOptions, Connected, Connector, PortPolicy, Prepared};
pub use error::{
    Attempt, CallStatus, ConfigError, DisconnectCause, Error, HandshakeError, UnixHolder,
};
pub use limits::Limits;
pub use listen::{ListenOptions, UnixSocketListener, listen, listen_unix};
pub use peer::{
    Admission, AllowedAddress, IdentityMode, NodeId, PeerCredentials, PeerTable, ServerIdentity,
    UnixAdmission,
};
pub use procedure::Procedure;
pub use server::{
    CallContext, ConnectionInfo, HandlerFuture, ProcError, RunningServer, Server, ServerOptions,
    ServerStats, Service, Stopper, Verdict, VerdictReason,
};
pub use sock::Keepalive;

/// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
