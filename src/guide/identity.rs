//! # Identity: peers known by the address the server observed
//!
//! A peer is who the address the server *observed* says it is, checked in
//! both directions. Node `node-b` at 127.0.0.2 calls node `node-a`, whose
//! peer table allows `node-b` from that address only; a caller at
//! 127.0.0.3 claiming `node-c` is refused at its HELLO:
//!
//! ```
//! use bytes::Bytes;
//! use peerwire::proto::AuthStat;
//! use peerwire::{Admission, Client, ClientIdentity, ClientOptions, Endpoint, Error, IdentityMode,
//!                PeerTable, Server, ServerIdentity, ServerOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(ServerOptions {
//!     admission: Admission { reject: vec![], allow: vec!["127.0.0.0/8".parse()?] },
//!     identity: Some(ServerIdentity {
//!         node: "node-a".parse()?,
//!         cluster: Some("prod".into()),
//!         peers: PeerTable::new().allow("node-b".parse()?, ["127.0.0.2".parse()?]),
//!         mode: IdentityMode::Strict,
//!     }),
//!     ..ServerOptions::default()
//! })
//! .service(0x2000_0001, 1, |ctx: peerwire::CallContext, _procedure, _args: Bytes| async move {
//!     // Past the HELLO gate, every call knows its peer's node ID.
//!     Ok(Bytes::from(ctx.peer.map(|id| id.to_string()).unwrap_or_default()))
//! })
//! .serve(&["127.0.0.1:0".parse()?])?;
//! let address = Endpoint::from(server.local_addrs()[0]);
//!
//! let mut me = ClientIdentity::new("node-b".parse()?, "node-a".parse()?);
//! me.cluster = Some("prod".into());
//! let options = ClientOptions { identity: Some(me), ..ClientOptions::default() }
//!     .with_source("127.0.0.2".parse::<peerwire::ScopedIp>()?);
//! let client = Client::new(vec![address.clone()], options)?;
//! let reply = client.call(0x2000_0001, 1, 1, Bytes::new()).await?;
//! assert_eq!(&reply[..], b"node-b");
//! // The server's answer: its node ID, and our address as it observed it.
//! let hello = client.hello().expect("identity on");
//! assert_eq!(hello.node.to_string(), "node-a");
//! assert_eq!(hello.observed.ip().to_string(), "127.0.0.2");
//!
//! // An address the peer table does not know for the ID it claims.
//! let mut impostor = ClientIdentity::new("node-c".parse()?, "node-a".parse()?);
//! impostor.cluster = Some("prod".into());
//! let options = ClientOptions { identity: Some(impostor), ..ClientOptions::default() }
//!     .with_source("127.0.0.3".parse::<peerwire::ScopedIp>()?);
//! let refused = Client::new(vec![address], options)?.connect().await.unwrap_err();
//! let Error::Unreachable { error, .. } = refused else { panic!("{refused}") };
//! assert!(matches!(*error, Error::IdentityRefused { stat: AuthStat::REJECTED_CRED, .. }));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! - **Admission** ([`ServerOptions::admission`](crate::ServerOptions::admission)):
//!   on accept, before a byte is read: the reject list, then the allow
//!   list (empty allows all). A refused connection is closed unread,
//!   logged and counted.
//! - **HELLO** (program 542136146 = `0x2050_5752`, version 1, procedure 1;
//!   the XDR layout is in [`programs::hello`](crate::peer::hello)): the
//!   caller's node ID (1–255 bytes of UTF-8 without control characters: a
//!   claim with one is refused with a verdict that shows it escaped), its
//!   protocol versions and an optional cluster ID. The server answers with
//!   its node ID, the caller's address as it observed it, and the version
//!   chosen. Until HELLO succeeds only NULL and HELLO are served; anything
//!   else gets AUTH_ERROR (AUTH_TOOWEAK). An unknown node ID, a known one
//!   from an address outside its list, a caller claiming the server's own
//!   ID, or another cluster gets AUTH_ERROR (AUTH_REJECTEDCRED). Either
//!   closes the connection, and the log names the claimed ID, the observed
//!   address and the expected addresses. A connection without HELLO within
//!   `handshake_timeout` (10 s) is closed.
//!   [`IdentityMode::Open`](crate::IdentityMode::Open) accepts any ID from
//!   an admitted address and still records it.
//! - **Peer table entries**: `192.0.2.10`, `192.0.2.0/24`,
//!   `2001:db8::/48`, `fe80::a%eth0` (that interface only), `fe80::a` (any
//!   interface). Observed addresses are normalised first:
//!   `::ffff:192.0.2.10` matches `192.0.2.10`; the scope counts only for
//!   link-local. Entries and admission networks are normalised the same
//!   way when they are built: an IPv4-mapped entry or network
//!   (`::ffff:192.0.2.0/120`) is its IPv4 one (`192.0.2.0/24`), and is shown
//!   so; a mapped network shorter than /96 has no IPv4 form and is an
//!   error. On a dual-stack `[::]` listener an IPv4 caller is judged, logged
//!   and shown as IPv4 (verdicts, `CallContext::observed`).
//! - **Client** ([`ClientOptions::identity`](crate::ClientOptions::identity)):
//!   HELLO on every connection and reconnection. Another node answering is
//!   `WrongPeer`; an observed address other than our bound source is
//!   `ObservedMismatch` (or a warning with
//!   [`MismatchPolicy::Warn`](crate::MismatchPolicy::Warn)).
//!   [`Client::hello`](crate::Client::hello) shows the last answer.
//! - **Server view**: handlers get the peer's node ID in
//!   [`CallContext::peer`](crate::CallContext::peer);
//!   [`RunningServer::connections`](crate::RunningServer::connections)
//!   lists open connections with their peers and addresses, and
//!   [`RunningServer::verdicts`](crate::RunningServer::verdicts) the last 64
//!   inbound verdicts, each with a matchable
//!   [`VerdictReason`](crate::VerdictReason) (not admitted, bad framing,
//!   closed before HELLO, handshake timeout, refused HELLO, call before
//!   HELLO, second HELLO, over the pre-HELLO record limit, no longer
//!   allowed); repeats from one address for one node ID and reason are one
//!   entry with a `count` and the first and latest time. Every connection
//!   that ends before a successful HELLO leaves one. The list is fair across
//!   sources: one address (or one uid/gid on a Unix socket) keeps at most
//!   [`server::VERDICTS_PER_SOURCE`](crate::server::VERDICTS_PER_SOURCE)
//!   (8) entries, and a full list gives up the oldest entry of the source
//!   with the most, so an address cycling claimed node IDs cannot push an
//!   impostor out. A connection closed for bad framing is counted in
//!   `bad_framing` and logged at warn, with an identity or without.
//! - **Changing the policy while running**:
//!   [`RunningServer::update`](crate::RunningServer::update) replaces the
//!   admission lists and the peer table; new connections meet them at once,
//!   and open connections no longer allowed are closed with a
//!   `NoLongerAllowed` verdict (the others are kept). Once `update` (or
//!   `update_unix_admission`) returns it holds for every connection: no
//!   connection answers a call or accepts a HELLO it reads afterwards unless
//!   the new lists allow it, including one accepted a moment before or
//!   still in its TLS handshake. `update` does not wait for the
//!   connections, so a reply to a call read before it returned may still go
//!   out. Concurrent updates of both lists are both kept.
//!   [`listen_also`](crate::RunningServer::listen_also) and
//!   [`stop_listening`](crate::RunningServer::stop_listening) open and
//!   close listeners; a closed listener's connections go on.
//!
//! **The limit of this model:** an address is not a secret. Whoever can
//! forge a source address on the link, or controls a router on the path,
//! can claim it; admission lists narrow who can try. Mutual TLS
//! ([`tls`](super::tls)) closes that gap: the certificate must name the
//! observed address and the claimed node ID.
