//! # Errors you will meet
//!
//! All errors are [`peerwire::Error`](crate::Error), one `#[non_exhaustive]`
//! enum: each variant carries the addresses involved, and the OS error is
//! its `source()`. [`Error::is_config`](crate::Error::is_config) tells
//! configuration errors (retrying will not help) from network ones.
//!
//! ```
//! use bytes::Bytes;
//! use peerwire::{CallStatus, Client, ClientOptions, Connector, ConnectOptions, Endpoint, Error,
//!                Server, ServerOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! // A link-local destination without a scope: refused before any socket exists.
//! let connector = Connector::new(ConnectOptions::default());
//! let error = connector.connect(&"[fe80::1]:24007".parse()?).await.unwrap_err();
//! assert!(matches!(error, Error::MissingScope { .. }));
//! assert!(error.is_config());
//! println!("{error}"); // destination fe80::1 is link-local and needs a scope: write it as ...
//!
//! // A client needs somewhere to go.
//! assert!(matches!(Client::new(vec![], ClientOptions::default()), Err(Error::NoDestinations(_))));
//!
//! // The server answers, but not with results: a program it does not serve.
//! let server = Server::new(ServerOptions::default()).serve(&["127.0.0.1:0".parse()?])?;
//! let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
//! match client.call(0x2000_0009, 1, 1, Bytes::new()).await {
//!     Err(Error::CallRejected { status: CallStatus::ProgUnavail, program, .. }) => {
//!         assert_eq!(program, 0x2000_0009)
//!     }
//!     other => panic!("expected PROG_UNAVAIL, got {other:?}"),
//! }
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Connecting and listening
//!
//! | error | when | what to do |
//! |---|---|---|
//! | `Parse` | an address's text did not parse | the message says what was expected |
//! | `MissingScope` | a link-local source, destination or listen address has no `%scope` | add the interface: `fe80::a%eth0` |
//! | `ScopeMismatch` | a link-local source and destination name different interfaces | use the source of the destination's link |
//! | `UnknownInterface` | a scope names an interface this host lacks | check the name (`ip link`) |
//! | `NoSourceForFamily` | strict policy, destination of a family with no source | configure a source for it, or `FamilyPolicy::KernelChooses` |
//! | `Bind` | the source could not be bound. `EADDRNOTAVAIL`: *not assigned to this host, or still tentative (DAD)*; `EACCES`: privileged port without the capability | add the address, use `wait_tentative` or `freebind`; never followed by an unbound connect |
//! | `PortsExhausted` | every port of the range (or of 512-1023) is in use, whether the kernel or the bind loop picks the port | widen the range, or hold fewer connections |
//! | `Connect`, `ConnectTimeout` | the TCP connect failed or took too long | names source and destination |
//! | `SourceMismatch` | `getsockname` after connect is not the configured source | the connection is closed; something rewrote the source |
//! | `AllAttemptsFailed` | Happy Eyeballs: every destination failed | lists each destination, its source and its error |
//! | `Resolve`, `NoDestinations` | a name did not resolve, or to nothing; an empty destination list | check the name or the list |
//! | `Socket`, `Listen` | making a socket or listening failed | names the address |
//! | `UnixListen`, `UnixInUse`, `UnixConnect` | a Unix socket path (see [`unix`](super::unix)) | each names the path and says what holds it |
//! | `Config` | options out of range or that cannot work together, found when they are used to build something: a [`ConfigError`](crate::ConfigError) (`PortRange`, `DualStack`, `UnixMode`, `MappedNetwork`, `RecordBeforeHello`, `TlsOff`, ...) | the message names the option and the allowed range |
//! | `Tls { peer: None, .. }` | our own TLS material does not load: a [`TlsConfigError`](crate::tls::TlsConfigError) naming the part ([`TlsPart`](crate::tls::TlsPart)) and its file; a client's names its `peer` | fix the file it names |
//!
//! ## Calls
//!
//! Each names the peer, and the program, version and procedure where there
//! is one:
//!
//! | error | when |
//! |---|---|
//! | `CallTimeout { sent, .. }` | the call's deadline passed; `sent` says whether any of it reached the kernel |
//! | `Disconnected { cause, sent, .. }` | the connection ended with the call pending; `sent: false` is safe to retry (see [`calls`](super::calls)) |
//! | `CircuitOpen { next_attempt, .. }` | repeated connect failures: calls fail fast until the single probe at `next_attempt` |
//! | `Unreachable { error, .. }` | from [`Client::connect`](crate::Client::connect): the connect (or HELLO) error inside |
//! | `CallRejected { status, .. }` | the server answered PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR, RPC_MISMATCH or AUTH_ERROR ([`CallStatus`](crate::CallStatus)) |
//! | `ResultsTooLarge` | the reply's results are over `ClientOptions::limits`; the connection goes on |
//! | `BadArgs` | typed arguments with an item over its XDR bound; nothing was sent |
//! | `BadResults` | the results did not decode as the type asked for |
//! | `ClientClosed` | the client was closed |
//!
//! A [`DisconnectCause`](crate::DisconnectCause) says what broke:
//! `BadRecord(DecodeError)` names the limit and its value and says whether
//! it is *our* limit (a reply over `ClientOptions::limits`) or the peer's
//! malformed framing; `PingTimeout`, `Io`, `Closed` and `Clogged` (see the
//! slot rule); `TlsAlert(alert)` is a fatal alert that ended a running
//! session (not a refusal: calls written count as `sent`); `TlsRefused`,
//! `ExpectsTls` and `CertificateRevoked` are in [`tls`](super::tls).
//!
//! ## Identity and TLS
//!
//! | error | when |
//! |---|---|
//! | `IdentityRefused` | the server refused our HELLO (AUTH_ERROR): our node ID is not allowed from the address it observed |
//! | `WrongPeer` | another node answered than the one we meant to reach |
//! | `ObservedMismatch` | the server observed another source than the one we bound (NAT, or a source silently not used) |
//! | `Handshake` | the peer broke the HELLO exchange: a matchable [`HandshakeError`](crate::HandshakeError) (closed, timeout, bad record, malformed reply, not a reply, wrong XID, unsupported program, malformed results) |
//! | `Tls` | TLS failed: a matchable [`TlsError`](crate::tls::TlsError) (a certificate rule, the STARTTLS probe refused, the server's refusal by alert, the handshake) |
//! | `ExpectsTls` | a client without TLS met a server that seems to expect it |
//!
//! Connect, HELLO and TLS failures count as connect failures of a client:
//! they drive its backoff and breaker, and
//! [`Client::last_connect_error`](crate::Client::last_connect_error) shows
//! the latest.
