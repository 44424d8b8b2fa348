//! # Unix sockets
//!
//! The same record marking and RPC run over Unix stream sockets, with the
//! same client (deadlines, heartbeats, reconnect, breaker) and server
//! (limits, timers, backpressure, graceful shutdown). Wherever an address
//! is written, `unix:/run/x.socket` names a path
//! ([`Address`](crate::Address): an [`Endpoint`](crate::Endpoint) or a Unix
//! path). One server here listens on loopback TCP and on a socket file at
//! once, and a handler sees the Unix caller's credentials:
//!
//! ```
//! use bytes::Bytes;
//! use peerwire::{Address, CallContext, Client, ClientOptions, Server, ServerOptions, UnixAdmission};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("peerwire-guide-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("node.socket");
//! let uid = nix::unistd::getuid().as_raw();
//!
//! let addresses = vec!["127.0.0.1:0".parse::<Address>()?, Address::unix(&path)?];
//! let server = Server::new(ServerOptions {
//!     unix_admission: UnixAdmission::users([uid]), // after the file's mode, 0o600 by default
//!     ..ServerOptions::default()
//! })
//! .service(0x2000_0001, 1, |ctx: CallContext, _procedure, _args: Bytes| async move {
//!     let credentials = ctx.credentials.expect("a Unix caller");
//!     Ok(Bytes::copy_from_slice(&credentials.uid.to_be_bytes()))
//! })
//! .serve_on(&addresses)?;
//!
//! let client = Client::unix(&path, ClientOptions::default())?;
//! let reply = client.call(0x2000_0001, 1, 1, Bytes::new()).await?;
//! assert_eq!(&reply[..], &uid.to_be_bytes());
//!
//! server.shutdown().await; // removes the socket file it placed
//! assert!(!path.exists());
//! std::fs::remove_dir(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! - **Identity is the peer's credentials** (`SO_PEERCRED`: uid, gid, pid),
//!   recorded by the kernel at `connect(2)`. Two gates, in order: the socket
//!   file's mode ([`ListenOptions::unix_mode`](crate::ListenOptions::unix_mode),
//!   default `0o600`, set before the socket listens), then
//!   [`ServerOptions::unix_admission`](crate::ServerOptions::unix_admission)
//!   ([`UnixAdmission`](crate::UnixAdmission): reject lists, then allow
//!   lists, by uid and by gid; only the primary gid is known), before a
//!   byte is read. A refused connection is closed unread with
//!   [`VerdictReason::CredentialsNotAdmitted`](crate::VerdictReason::CredentialsNotAdmitted).
//!   `RunningServer::update_unix_admission` replaces the lists while
//!   running.
//! - Handlers see [`CallContext::credentials`](crate::CallContext::credentials);
//!   [`Verdict`](crate::Verdict) and [`ConnectionInfo`](crate::ConnectionInfo)
//!   carry them too. A Unix peer has no address: `observed` and `local`
//!   hold `0.0.0.0:0` there.
//! - **HELLO and the peer table do not apply on Unix sockets**: the peer
//!   table binds node IDs to addresses, and a Unix peer has none. A server
//!   with an identity gates its TCP connections with HELLO and its Unix
//!   connections by credentials; a [`Client::unix`](crate::Client::unix)
//!   with an identity is a configuration error.
//! - **The socket file** ([`listen_unix`](crate::listen_unix)): an
//!   exclusive `flock` on `PATH.lock` (another peerwire server on the path
//!   is `Error::UnixInUse { holder: Locked }`); a probe of `PATH`: a live
//!   socket (`connect` succeeds, glusterd's for instance) is
//!   `UnixInUse { holder: LiveServer }` and never stolen, a file that is
//!   not a socket is `UnixInUse { holder: NotASocket }` and never removed,
//!   a stale socket is replaced; the new socket is bound under a temporary
//!   name (`.NAME.PID.RANDOM`) in the same directory, chmod to `unix_mode`,
//!   listening, then renamed over `PATH` atomically. At shutdown the file is
//!   removed only if `PATH` still names the file we placed. Keep sockets in
//!   a directory others cannot write, such as `/run`.
//! - Errors name the path: `failed to connect to unix:/run/x.socket: No such
//!   file or directory (os error 2) (no socket file there: is the server
//!   running?)`.
//! - TLS applies to TCP only: with `ServerOptions::tls` set, Unix listeners
//!   stay plain, their peers judged by credentials.
