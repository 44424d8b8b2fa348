//! # Tracing: the spans every log event carries
//!
//! peerwire logs through the `tracing` crate, in spans that every event
//! inside them carries, so a subscriber that prints span fields shows on
//! each line which connection, peer and call it is about:
//!
//! | span | level | fields | where |
//! |---|---|---|---|
//! | `conn` | info | `id`, `observed` (canonical: IPv4 callers as IPv4), `local`, `peer` (the node ID, once its HELLO succeeded) | a server's TCP connection, for its whole life |
//! | `conn` | info | `id`, `path`, `uid`, `gid`, `pid` | a server's Unix socket connection |
//! | `call` | debug | `xid`, `program`, `version`, `procedure` | a handler, inside its connection's span, whether it runs inline or as a task |
//! | `conn` | info | `peer` (the address dialled), `local`, `remote`, `observed` (how the peer saw us, with identity on) | a client connection |
//!
//! Refusals (by admission, at the HELLO, of a certificate, of plain text
//! to a TLS server) and broken record marking are logged at `warn`, with
//! the observed address and, where there is one, the claimed node ID or
//! the certificate's names; so are socket options that could not be set
//! and results over their XDR bound (naming the procedure).
//!
//! peerd logs them with its events through `tracing-subscriber`, filtered
//! by `RUST_LOG` (`RUST_LOG=debug` shows the `call` spans too). In your own
//! binary, any subscriber will do; with `tracing-subscriber`'s `fmt`
//! layer the span fields are printed before each event:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! let _ = tracing_subscriber::fmt()
//!     .with_env_filter(tracing_subscriber::EnvFilter::new("peerwire=debug"))
//!     .try_init();
//! let server = peerwire::Server::default().serve(&["127.0.0.1:0".parse()?])?;
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
