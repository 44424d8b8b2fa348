//! # Connecting, listening, and the options
//!
//! ## Connecting from a configured source
//!
//! A [`Connector`](crate::Connector) binds every outgoing socket to the
//! source its [`ConnectOptions::sources`](crate::ConnectOptions::sources)
//! gives for the destination's family, or fails with an error that names
//! it. Here a listener on loopback sees the connection come from exactly
//! the source configured:
//!
//! ```
//! use std::time::Duration;
//! use peerwire::{ConnectOptions, Connector, ListenOptions, PortPolicy, ScopedIp, Sources, listen};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = listen(&"127.0.0.1:0".parse()?, &ListenOptions::default())?;
//! let port = listener.local_addr()?.port();
//!
//! let connector = Connector::new(ConnectOptions {
//!     sources: Sources::new()
//!         .with("127.0.0.2".parse::<ScopedIp>()?)   // used for IPv4 destinations
//!         .with("::1".parse::<ScopedIp>()?),        // used for IPv6 destinations
//!     port_policy: PortPolicy::Ephemeral,
//!     connect_timeout: Duration::from_secs(5),
//!     ..ConnectOptions::default()
//! });
//! // A literal address is used as it is; a name is resolved, and its
//! // addresses raced by Happy Eyeballs.
//! let connected = connector.connect_host("127.0.0.1", port).await?;
//! let (_stream, observed) = listener.accept().await?;
//! assert_eq!(connected.local_addr().ip().to_string(), "127.0.0.2");
//! assert_eq!(observed, connected.local_addr());
//! # Ok(())
//! # }
//! ```
//!
//! With a link-local source the scope names the interface; this needs a
//! real link, so it is only compiled here:
//!
//! ```no_run
//! use peerwire::{ConnectOptions, Connector, ScopedIp, Sources};
//!
//! # async fn run() -> Result<(), peerwire::Error> {
//! let connector = Connector::new(ConnectOptions {
//!     sources: Sources::new()
//!         .with("192.0.2.10".parse::<ScopedIp>()?)
//!         .with("fe80::a%eth0".parse::<ScopedIp>()?),
//!     ..ConnectOptions::default()
//! });
//! let connected = connector.connect(&"[fe80::b%eth0]:24007".parse()?).await?;
//! println!("connected from {} to {}", connected.local_addr(), connected.peer_addr());
//! # Ok(()) }
//! ```
//!
//! Addresses are written `192.0.2.10`, `2001:db8::10`, `fe80::a%eth0`
//! (scope by interface name) or `fe80::a%3` (by index); endpoints
//! `192.0.2.10:24007`, `[2001:db8::10]:24007`, `[fe80::a%eth0]:24007`. A
//! scope name is resolved to an index when the socket is made.
//!
//! After `connect`, the socket's local address is compared with the
//! configured source (the IP, and the scope for link-local): a difference
//! is [`Error::SourceMismatch`](crate::Error::SourceMismatch) and the
//! connection is closed. [`Connector::prepare`](crate::Connector::prepare)
//! stops after the bind, for inspection.
//!
//! [`Connector::connect_any`](crate::Connector::connect_any) and
//! [`Connector::connect_host`](crate::Connector::connect_host) use Happy
//! Eyeballs (RFC 8305): the first address's family first, the families
//! alternating, a new attempt when the previous one fails or after the
//! delay, each attempt with its own family's source. The first connection
//! wins and the others are closed. Every connect is cancel-safe: dropping
//! its future closes every socket it made.
//!
//! ## `ConnectOptions`
//!
//! Public fields; set the ones you need and take the rest from
//! `..ConnectOptions::default()`, as above.
//!
//! | field | default | what it does |
//! |---|---|---|
//! | `sources` | none | one source per family (`Sources::new().with(ip)`); the destination's family picks it |
//! | `family_policy` | `Strict` | `Strict`: a destination whose family has no source, while the other family has one, is an error. `KernelChooses`: let the kernel pick for that family |
//! | `port_policy` | `Ephemeral` | `Ephemeral`: port 0 with `IP_BIND_ADDRESS_NO_PORT` (no port reserved before connect). `Range { low, high }`: `IP_LOCAL_PORT_RANGE`, or a bind loop from a random start on kernels without it or for a range outside the host's `ip_local_port_range` (which the kernel would silently ignore); a range used up is `PortsExhausted`. `Privileged`: 1023 down to 512, like `bindresvport` |
//! | `bind_address_no_port` | on | `IP_BIND_ADDRESS_NO_PORT` when binding port 0, so the kernel picks the port per 4-tuple at connect; off, one source IP runs out after one ephemeral range in all |
//! | `freebind` | off | `IP_FREEBIND`/`IPV6_FREEBIND`: bind a source that is not on the host yet, or tentative |
//! | `wait_tentative` | `None` | `Some(limit)`: retry the bind every 50 ms, up to `limit`, while an IPv6 source is tentative (DAD) |
//! | `device` | `None` | `Some(name)`: `SO_BINDTODEVICE` |
//! | `connect_timeout` | 10 s | |
//! | `happy_eyeballs_delay` | 250 ms | RFC 8305 connection attempt delay for `connect_any`/`connect_host` |
//! | `nodelay` | on | `TCP_NODELAY` |
//! | `keepalive` | 20 s, 2 s, 9 | `Some(Keepalive { time, interval, count })`: idle time, probe interval, probe count; `None` turns keepalive off |
//! | `user_timeout` | 42 s | `TCP_USER_TIMEOUT` |
//! | `tos` | `None` | `Some(tos)`: `IP_TOS` / `IPV6_TCLASS` |
//!
//! Identity options (source bind, device, freebind, `IPV6_V6ONLY`) are
//! fatal when they fail; tuning options (nodelay, keepalive, user timeout,
//! TOS, `IP_BIND_ADDRESS_NO_PORT`) log a warning.
//!
//! ## Listening: `ListenOptions`
//!
//! [`listen`](crate::listen()) always sets `IPV6_V6ONLY` explicitly: on,
//! except for `[::]` with `dual_stack: true`, the deliberate dual-stack
//! case. Link-local listen addresses need a scope.
//!
//! | field | default | what it does |
//! |---|---|---|
//! | `backlog` | 1024 | the `listen(2)` backlog |
//! | `dual_stack` | off | on a `[::]` address only: one socket that takes IPv4 callers too |
//! | `reuse_address` | on | `SO_REUSEADDR` |
//! | `device` | `None` | `Some(name)`: `SO_BINDTODEVICE` |
//! | `unix_mode` | `0o600` | the mode of a Unix socket file, set before it listens (see [`unix`](super::unix)) |
//!
//! ## `ClientOptions`
//!
//! A [`Client`](crate::Client) is one connection to one peer; its options
//! hold the [`ConnectOptions`](crate::ConnectOptions) for that connection
//! and the call machinery's settings:
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use peerwire::{Client, ClientOptions, Endpoint, Server, ServerOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! let server = Server::new(ServerOptions {
//!     max_in_progress: 16,                     // per connection
//!     idle_timeout: Duration::from_secs(60),
//!     ..ServerOptions::default()
//! })
//! .service(0x2000_0001, 1, |_ctx, _procedure, args: Bytes| async move { Ok(args) })
//! .serve(&["127.0.0.1:0".parse()?])?;
//!
//! let options = ClientOptions {
//!     deadline: Duration::from_secs(5),        // each call's, unless it sets its own
//!     max_in_flight: 16,
//!     ..ClientOptions::default()
//! }
//! .with_source("127.0.0.1".parse::<peerwire::ScopedIp>()?);
//! let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], options)?;
//! client.connect().await?;                     // optional: calls connect on demand
//! assert_eq!(&client.call(0x2000_0001, 1, 1, Bytes::from_static(b"hi")).await?[..], b"hi");
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! | field | default | what it does |
//! |---|---|---|
//! | `connect` | `ConnectOptions::default()` | sources, ports, timeouts of the connection (see above) |
//! | `deadline` | 60 s | per call; `CallOptions::deadline` overrides it. A call past its deadline fails with `CallTimeout`; its XID stays reserved until the late reply (dropped, counted) or the connection closes, so a reply never reaches a caller it was not for |
//! | `max_in_flight` | 64 | in-flight slots; callers wait (cancel-safely, within their deadlines) for one. See [the slot rule](super::calls#the-slot-rule) |
//! | `ping_interval`, `ping_timeout` | 10 s, 42 s | while calls wait, a NULL ping after `ping_interval` of silence; no answer within `ping_timeout` declares the connection dead |
//! | `ping_program` | `(0x2050_5752, 1)` | the program version whose NULL is the ping (peerwire's HELLO program; any reply proves the peer alive, even PROG_UNAVAIL) |
//! | `backoff_base`, `backoff_max`, `backoff_jitter` | 200 ms, 15 s, ±20 % | reconnect delays, reset after a successful connection |
//! | `first_connect_spread` | zero | the first attempt waits a random delay up to this, so clients made at once do not all dial in the same instant; after a lost connection the next attempt always waits a random part of `backoff_base` |
//! | `breaker_threshold` | 5 | consecutive connect failures before calls fail fast with `CircuitOpen` (which says when the next, single probe runs) |
//! | `limits` | 16 MiB | [`Limits`](crate::Limits): the largest *results* accepted, in bytes of results (RPC headers come on top). A larger reply fails its call with `ResultsTooLarge` and the connection goes on; a record beyond the limit plus the largest RPC header ([`Limits::HEADER_ALLOWANCE`](crate::Limits::HEADER_ALLOWANCE), 840 bytes) breaks the connection before it is read |
//! | `identity` | none | HELLO on every connection (see [`identity`](super::identity)) |
//! | `tls` | none | with the `tls` feature: mutual TLS on every connection (see [`tls`](super::tls)) |
//!
//! ## `ServerOptions`
//!
//! | field | default | what it does |
//! |---|---|---|
//! | `max_connections` | 1024 | accepting pauses at the limit |
//! | `max_in_progress` | 64 | per connection; at the limit, or with 1 MiB of replies the peer has not read, the server stops reading and TCP pushes back |
//! | `idle_timeout` | 5 min | a connection with no calls in progress and no whole record received is closed (this also ends a record sent byte by byte) |
//! | `write_timeout` | 30 s | a peer that stops reading is disconnected |
//! | `shutdown_grace` | 10 s | shutdown stops accepting and reading, lets calls in progress finish, then closes |
//! | `keepalive`, `user_timeout` | 20 s, 2 s, 9; 42 s | on every accepted TCP connection, as on outgoing ones: a peer that vanishes is found and closed, not held until `idle_timeout` |
//! | `limits` | 16 MiB | [`Limits`](crate::Limits): the largest *arguments* accepted, in bytes of arguments |
//! | `max_record_before_hello` | 4 KiB | with an identity: the largest record (and fragment) a connection may send before its HELLO succeeds (at least [`ServerOptions::MIN_RECORD_BEFORE_HELLO`](crate::ServerOptions::MIN_RECORD_BEFORE_HELLO), 1,432 bytes, the largest HELLO); beyond it the connection is closed with an `OverLimitBeforeHello` verdict, counted in `bad_framing` |
//! | `listen` | `ListenOptions::default()` | the listening sockets' options; `dual_stack` applies to `[::]` addresses only |
//! | `admission` | admit all | address admission, before a byte is read (see [`identity`](super::identity)) |
//! | `identity` | none | the HELLO gate and the peer table (see [`identity`](super::identity)) |
//! | `unix_admission` | admit all | admission by credentials on Unix sockets (see [`unix`](super::unix)) |
//! | `handshake_timeout` | 10 s | with an identity or TLS: a connection without a successful HELLO (and TLS handshake) in this time is closed |
//! | `tls` | none | with the `tls` feature: mutual TLS on every TCP connection (see [`tls`](super::tls)) |
//!
//! Every timer is kept by the connection's one task whatever the peer
//! does: a peer that floods calls and never reads its replies still meets
//! the HELLO, idle, write and grace timers.
