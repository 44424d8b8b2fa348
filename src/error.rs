//! The crate's error type.
//!
//! Every variant that involves an address carries it; the OS error, where
//! there is one, is [`std::error::Error::source`]. Messages are lowercase,
//! name the addresses, and say what to do where that helps.
//!
//! [`Error`] is here with the [`Attempt`]s of Happy Eyeballs; the types its
//! variants carry have their own files: [`HandshakeError`] (handshake.rs),
//! [`DisconnectCause`] and [`CallStatus`] (call.rs), [`UnixHolder`]
//! (unix_holder.rs), and the errno hints that its messages end with
//! (hints.rs).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::addr::{AddrParseError, Address, Endpoint, Family, Role, ScopedIp};

mod call;
mod config;
mod handshake;
mod hints;
mod unix_holder;

pub use call::{CallStatus, DisconnectCause};
pub use config::ConfigError;
pub use handshake::HandshakeError;
use hints::{explain_bind, explain_connect, explain_listen, explain_unix};
pub use unix_holder::UnixHolder;

/// Errors from peerwire.
///
/// `Clone`: the OS errors inside are shared ([`Arc`]), so one connect
/// failure can fail every waiting call with the same error. The guide's
/// [errors chapter](crate::guide::errors) says when each is met.
///
/// ```
/// use bytes::Bytes;
/// use peerwire::{CallStatus, Client, ClientOptions, Endpoint, Error, Server, ServerOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peerwire::Error> {
/// let server = Server::new(ServerOptions::default()).serve(&["127.0.0.1:0".parse()?])?;
/// let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
/// match client.call(0x2000_0009, 1, 1, Bytes::new()).await {
///     Err(Error::CallRejected { status: CallStatus::ProgUnavail, .. }) => {} // not served there
///     Err(error @ Error::Disconnected { sent: false, .. }) => println!("safe to retry: {error}"),
///     Err(error) if error.is_config() => panic!("fix the configuration: {error}"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An address's text did not parse.
    #[error(transparent)]
    Parse(#[from] AddrParseError),

    /// A link-local address has no scope. Raised before any socket exists.
    #[error(
        "{role} {address} is link-local and needs a scope: write it as {address}%IFNAME or %INDEX"
    )]
    MissingScope {
        /// Which address it is.
        role: Role,
        /// The address without a scope.
        address: ScopedIp,
    },

    /// A link-local source and destination name different interfaces.
    /// Raised before any socket exists.
    #[error(
        "source {source_addr} and destination {destination} are on different links; a link-local source must use the destination's interface"
    )]
    ScopeMismatch {
        /// The configured source.
        source_addr: ScopedIp,
        /// The destination.
        destination: Endpoint,
    },

    /// A scope names an interface that this host does not have.
    #[error("interface {name:?} in {role} {address} does not exist on this host")]
    UnknownInterface {
        /// Which address it is.
        role: Role,
        /// The scoped address.
        address: ScopedIp,
        /// The interface name.
        name: String,
        /// The OS error.
        #[source]
        error: Arc<io::Error>,
    },

    /// Under [`FamilyPolicy::Strict`](crate::FamilyPolicy::Strict), the
    /// destination's family has no source while the other family has one.
    #[error(
        "no {family} source is configured for destination {destination}, only an {configured} one; configure an {family} source, or opt in to FamilyPolicy::KernelChooses"
    )]
    NoSourceForFamily {
        /// The destination.
        destination: Endpoint,
        /// The destination's family.
        family: Family,
        /// The family that has a source.
        configured: Family,
    },

    /// The options contradict each other or are out of range. Found when
    /// they are used to build something, never on a later connect.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),

    /// A socket could not be made, or an option that identity depends on
    /// (device binding, `IPV6_V6ONLY`, freebind) could not be set.
    #[error("failed to {what} for {address}: {error}")]
    Socket {
        /// What was being done, such as "set SO_BINDTODEVICE".
        what: &'static str,
        /// The destination or listen address.
        address: Endpoint,
        /// The OS error.
        #[source]
        error: Arc<io::Error>,
    },

    /// Binding the configured source failed. No connection was attempted.
    #[error("failed to bind source {}: {}", BindTarget(source_addr, *port), explain_bind(error, source_addr))]
    Bind {
        /// The configured source (the unspecified address when the kernel
        /// chooses the IP but a port policy applies).
        source_addr: ScopedIp,
        /// The port tried, 0 for an ephemeral one.
        port: u16,
        /// The destination the socket was for.
        destination: Endpoint,
        /// The OS error.
        #[source]
        error: Arc<io::Error>,
    },

    /// Every port of a [`PortPolicy::Range`](crate::PortPolicy::Range) or
    /// of the privileged ports was in use: the bind loop found none free,
    /// or the kernel, given the range with `IP_LOCAL_PORT_RANGE`, had none
    /// left toward this destination at bind or connect. No connection was
    /// made.
    #[error(
        "no free port in {low}-{high} on source {source_addr} for {destination}; widen the port range, or hold fewer connections"
    )]
    PortsExhausted {
        /// The source.
        source_addr: ScopedIp,
        /// The destination.
        destination: Endpoint,
        /// Lowest port of the range.
        low: u16,
        /// Highest port of the range.
        high: u16,
    },

    /// The TCP connect failed.
    #[error(
        "failed to connect to {destination} from {}: {}",
        OrKernel(source_addr),
        explain_connect(error, destination)
    )]
    Connect {
        /// The bound local address, if the socket was bound.
        source_addr: Option<SocketAddr>,
        /// The destination.
        destination: Endpoint,
        /// The OS error.
        #[source]
        error: Arc<io::Error>,
    },

    /// The TCP connect did not finish in time.
    #[error(
        "connect to {destination} from {} timed out after {timeout:?}",
        OrKernel(source_addr)
    )]
    ConnectTimeout {
        /// The bound local address, if the socket was bound.
        source_addr: Option<SocketAddr>,
        /// The destination.
        destination: Endpoint,
        /// The timeout that passed.
        timeout: Duration,
    },

    /// After connecting, the socket's local address is not the configured
    /// source. The connection has been closed.
    #[error(
        "connected to {remote} from {actual}, not from the configured source {configured}; closed"
    )]
    SourceMismatch {
        /// The configured source.
        configured: ScopedIp,
        /// What `getsockname` returned.
        actual: SocketAddr,
        /// What `getpeername` returned.
        remote: SocketAddr,
    },

    /// Every Happy Eyeballs attempt failed; each is listed.
    #[error("all {} connection attempts failed: {}", attempts.len(), AttemptList(attempts))]
    AllAttemptsFailed {
        /// The attempts, in the order they were started.
        attempts: Vec<Attempt>,
    },

    /// A host name could not be resolved.
    #[error("failed to resolve {host:?}: {error}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        #[source]
        error: Arc<io::Error>,
    },

    /// Nothing to connect to: the list was empty, or the name resolved to
    /// no address.
    #[error("no destination addresses for {0:?}")]
    NoDestinations(String),

    /// A call's deadline passed before its reply came. When `sent`, the
    /// request reached the socket and may have run.
    #[error("call {program}/{version}/{procedure} to {peer} timed out after {after:?} ({})", SentOrNot(*sent))]
    CallTimeout {
        /// The peer the client serves.
        peer: Address,
        /// The program.
        program: u32,
        /// The version.
        version: u32,
        /// The procedure.
        procedure: u32,
        /// The deadline that passed.
        after: Duration,
        /// Whether the request was written.
        sent: bool,
    },

    /// The connection closed while the call was pending. When `sent`, the
    /// request reached the socket and may have run; otherwise it is safe to
    /// retry. With [`DisconnectCause::TlsRefused`], `sent` is false: the
    /// server refused the TLS session before it read any call.
    #[error("connection to {peer} lost ({cause}) with the call pending ({})", LostTail(*cause, *sent))]
    Disconnected {
        /// The peer the client serves.
        peer: Address,
        /// Why the connection ended.
        cause: DisconnectCause,
        /// Whether the request was written.
        sent: bool,
    },

    /// The circuit breaker is open after repeated connect failures: the call
    /// failed at once, without being sent.
    #[error("circuit open to {peer} after {failures} failed connects; next attempt in {:?}", next_attempt.saturating_duration_since(std::time::Instant::now()))]
    CircuitOpen {
        /// The peer the client serves.
        peer: Address,
        /// Consecutive failed connects.
        failures: u32,
        /// When the next connect attempt (a single probe) may run.
        next_attempt: std::time::Instant,
    },

    /// [`crate::Client::connect`]: the connection (or its HELLO) failed.
    #[error("cannot reach {peer}: {error}")]
    Unreachable {
        /// The peer the client serves.
        peer: Address,
        /// The connect error, as [`crate::Client::last_connect_error`]
        /// also shows it.
        #[source]
        error: Arc<Error>,
    },

    /// The server answered, but not with results.
    #[error("{peer} refused the call {program}/{version}/{procedure}: {status}")]
    CallRejected {
        /// The peer that answered.
        peer: Address,
        /// The program.
        program: u32,
        /// The version.
        version: u32,
        /// The procedure.
        procedure: u32,
        /// What it answered.
        status: CallStatus,
    },

    /// A reply carried more results than [`crate::ClientOptions::limits`]
    /// allows. The connection goes on.
    #[error("results from {peer} are {len} bytes, over the limit of {max}")]
    ResultsTooLarge {
        /// The peer that answered.
        peer: Address,
        /// The results' length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A typed call's arguments hold an item over the bound its XDR type
    /// sets (`opaque<N>`, `string<N>`, `T<N>`): the peer would refuse to
    /// decode them, so the call was not sent.
    #[error("arguments for {peer} not sent: {error}")]
    BadArgs {
        /// The peer the call was for.
        peer: Address,
        /// The item over its bound.
        #[source]
        error: crate::proto::xdr::EncodeError,
    },

    /// The results of a call did not decode as the type asked for.
    #[error("results from {peer} did not decode: {error}")]
    BadResults {
        /// The peer that answered.
        peer: Address,
        /// The decode error.
        #[source]
        error: crate::proto::DecodeError,
    },

    /// The server refused our HELLO (AUTH_ERROR): it does not accept our
    /// node ID from the address it observed, or we called before HELLO.
    #[error("{peer} refused our identity: {stat}")]
    IdentityRefused {
        /// The peer.
        peer: Address,
        /// Its AUTH_ERROR status.
        stat: crate::proto::AuthStat,
    },

    /// The server answered HELLO with another node ID than the one we meant
    /// to reach. The connection was closed.
    #[error("{peer} is node {answered:?}, not {expected:?}; closed")]
    WrongPeer {
        /// The address we connected to.
        peer: Address,
        /// The node we meant to reach.
        expected: crate::peer::NodeId,
        /// The node that answered.
        answered: crate::peer::NodeId,
    },

    /// The server observed another source address than the one we bound:
    /// NAT, or a source silently not used. The connection was closed.
    #[error(
        "{remote} saw us as {observed}, but we are bound to {bound} (NAT, or the source was not used); closed"
    )]
    ObservedMismatch {
        /// The peer's address on the connection.
        remote: SocketAddr,
        /// Our bound local address.
        bound: SocketAddr,
        /// The address the server reported.
        observed: SocketAddr,
    },

    /// The peer broke the handshake protocol.
    #[error("handshake with {peer} failed: {error}")]
    Handshake {
        /// The peer.
        peer: Address,
        /// What went wrong.
        #[source]
        error: HandshakeError,
    },

    /// TLS failed. With a `peer`, a client's TLS with that server: the
    /// handshake, the STARTTLS probe, or a certificate rule (either
    /// side's), counted as a connect failure; or the client's own TLS
    /// material ([`TlsError::Config`](crate::tls::TlsError::Config)).
    /// Without one, our own TLS material: a server's (at
    /// [`Server::serve`](crate::Server::serve) or
    /// [`RunningServer::update_tls`](crate::RunningServer::update_tls)), or
    /// one converted from a [`TlsError`](crate::tls::TlsError) by `?`.
    /// Match on `*error`.
    #[error("{}{error}", TlsWith(peer))]
    Tls {
        /// The server a client talks to; `None` for our own TLS material
        /// outside a client.
        peer: Option<Address>,
        /// What failed (boxed: certificate errors carry addresses and
        /// names, and [`Error`] stays small).
        #[source]
        error: Box<crate::tls::TlsError>,
    },

    /// A client without TLS met a server that seems to expect TLS: it
    /// answered our first record with TLS bytes, or reset the connection
    /// right after it without a reply (as glusterd with management TLS
    /// does).
    #[error("{peer} seems to expect TLS: {how} (set ClientOptions::tls)")]
    ExpectsTls {
        /// The peer.
        peer: Address,
        /// What it did.
        how: &'static str,
    },

    /// The client was closed.
    #[error("client for {peer} is closed")]
    ClientClosed {
        /// The peer the client served.
        peer: Address,
    },

    /// Listening failed.
    #[error("failed to listen on {address}: {}", explain_listen(error, address))]
    Listen {
        /// The listen address.
        address: Endpoint,
        /// The OS error.
        #[source]
        error: Arc<io::Error>,
    },

    /// Placing or listening on a Unix socket file failed.
    #[error("failed to listen on unix:{}: could not {what}: {}", path.display(), explain_unix(error))]
    UnixListen {
        /// The socket file's path.
        path: std::path::PathBuf,
        /// The step that failed, such as "bind a temporary name".
        what: &'static str,
        /// The OS error.
        #[source]
        error: Arc<io::Error>,
    },

    /// A Unix socket path is taken: a server answers on it, another
    /// peerwire server holds its lock, or it is not a socket file. Nothing
    /// was replaced.
    #[error("cannot listen on unix:{}: {holder}; not replacing it", path.display())]
    UnixInUse {
        /// The socket file's path.
        path: std::path::PathBuf,
        /// What holds it.
        holder: UnixHolder,
    },

    /// Connecting to a Unix socket failed.
    #[error("failed to connect to unix:{}: {}", path.display(), explain_unix(error))]
    UnixConnect {
        /// The socket file's path.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        error: Arc<io::Error>,
    },
}

/// How a lost connection's call ended: sent or not, or refused with the
/// TLS session.
struct LostTail(DisconnectCause, bool);

impl fmt::Display for LostTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            DisconnectCause::TlsRefused(_) if !self.1 => {
                f.write_str("it did not run: the server read no call before refusing")
            }
            _ => SentOrNot(self.1).fmt(f),
        }
    }
}

struct SentOrNot(bool);

impl fmt::Display for SentOrNot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 {
            "request was sent and may have run"
        } else {
            "request was not sent; safe to retry"
        })
    }
}

/// One Happy Eyeballs attempt that failed.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Where it tried to connect.
    pub destination: Endpoint,
    /// The source selected for it, or `None` when the kernel chose.
    pub source: Option<ScopedIp>,
    /// Why it failed.
    pub error: Error,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{} from {source}: {}", self.destination, self.error),
            None => write!(
                f,
                "{} from a kernel-chosen source: {}",
                self.destination, self.error
            ),
        }
    }
}

struct AttemptList<'a>(&'a [Attempt]);

impl fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            write!(f, "{}({}) {attempt}", if i == 0 { "" } else { "; " }, i + 1)?;
        }
        Ok(())
    }
}

/// "TLS with {peer} failed: " before a client's TLS error; nothing before
/// our own material's (its text names it).
struct TlsWith<'a>(&'a Option<Address>);

impl fmt::Display for TlsWith<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(peer) => write!(f, "TLS with {peer} failed: "),
            None => Ok(()),
        }
    }
}

struct OrKernel<'a>(&'a Option<SocketAddr>);

impl fmt::Display for OrKernel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("a kernel-chosen source"),
        }
    }
}

struct BindTarget<'a>(&'a ScopedIp, u16);

impl fmt::Display for BindTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            0 => write!(f, "{}", self.0),
            port => write!(f, "{}", Endpoint::new(self.0.clone(), port)),
        }
    }
}

/// A TLS error without a peer, as [`Error::Tls`] with `peer: None`: the
/// crate's own TLS material ([`TlsIdentity`](crate::tls::TlsIdentity) and
/// [`RevocationList`](crate::tls::RevocationList) constructors) fails with
/// [`TlsError::Config`](crate::tls::TlsError::Config), and `?` works in a
/// function that returns [`Error`].
#[cfg(feature = "tls")]
impl From<crate::tls::TlsError> for Error {
    fn from(error: crate::tls::TlsError) -> Error {
        Error::Tls {
            peer: None,
            error: Box::new(error),
        }
    }
}

impl Error {
    /// True for a definite answer, which every waiting call is failed
    /// with: an identity error (refused, wrong peer, observed mismatch), a
    /// certificate refused (by us or by the server's alert), or no TLS
    /// offered. Retrying at once will not change it.
    pub(crate) fn is_definite(&self) -> bool {
        match self {
            Error::IdentityRefused { .. }
            | Error::WrongPeer { .. }
            | Error::ObservedMismatch { .. }
            | Error::ExpectsTls { .. } => true,
            Error::Tls { error, .. } => matches!(
                **error,
                crate::tls::TlsError::Certificate(_)
                    | crate::tls::TlsError::StartTlsRefused
                    | crate::tls::TlsError::Refused { .. }
            ),
            _ => false,
        }
    }

    /// True when the cause is our own configuration rather than the network
    /// or the peer: retrying will not help.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Parse(_)
                | Error::MissingScope { .. }
                | Error::ScopeMismatch { .. }
                | Error::UnknownInterface { .. }
                | Error::NoSourceForFamily { .. }
                | Error::Config(_)
        ) || matches!(self, Error::Tls { error, .. } if matches!(**error, crate::tls::TlsError::Config(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Users return `Result<_, Error>` everywhere; keep it under clippy's
    /// `result_large_err` threshold (128 bytes) so they need no `allow`.
    #[test]
    fn error_stays_small_enough_to_return_by_value() {
        assert!(
            std::mem::size_of::<Error>() < 128,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    /// A clone shares the OS error (one connect failure fails every
    /// waiting call) and reads the same.
    /// A TLS error with a peer names it; our own material's error (from
    /// `?`, or a server's) reads as the material's problem alone, and
    /// both count as configuration when the material is at fault.
    #[cfg(feature = "tls")]
    #[test]
    fn tls_errors_name_their_peer_only_when_they_have_one() {
        use crate::tls::{TlsConfigError, TlsError, TlsPart};
        let material = TlsError::Config(TlsConfigError::Missing {
            part: TlsPart::Ca,
            origin: "ca.pem".into(),
        });
        let ours = Error::from(material.clone());
        assert!(matches!(&ours, Error::Tls { peer: None, .. }), "{ours:?}");
        assert_eq!(
            ours.to_string(),
            "TLS configuration: ca.pem: no CA CERTIFICATE in it"
        );
        assert!(ours.is_config());
        let peer: Address = "192.0.2.1:24007".parse::<Endpoint>().unwrap().into();
        let client = Error::Tls {
            peer: Some(peer),
            error: Box::new(material),
        };
        assert!(
            client
                .to_string()
                .starts_with("TLS with 192.0.2.1:24007 failed: TLS configuration: ca.pem:"),
            "{client}"
        );
        assert!(client.is_config());
        let refused = Error::Tls {
            peer: None,
            error: Box::new(TlsError::StartTlsRefused),
        };
        assert!(!refused.is_config());
    }

    #[test]
    fn config_errors_say_which_side_runs_without_tls() {
        let server = Error::from(ConfigError::TlsOff { peer: None });
        assert!(
            server.to_string().contains("this server runs without TLS")
                && server.to_string().contains("ServerOptions::tls"),
            "{server}"
        );
        let peer: Address = "192.0.2.1:24007".parse::<Endpoint>().unwrap().into();
        let client = Error::from(ConfigError::TlsOff { peer: Some(peer) });
        assert!(
            client
                .to_string()
                .contains("the client of 192.0.2.1:24007 runs without TLS")
                && client.to_string().contains("ClientOptions::tls"),
            "{client}"
        );
        assert!(server.is_config() && client.is_config());
    }

    #[test]
    fn clones_share_the_os_error() {
        let error = Error::Bind {
            source_addr: "192.0.2.10".parse().unwrap(),
            port: 0,
            destination: "192.0.2.1:1".parse().unwrap(),
            error: Arc::new(io::Error::from_raw_os_error(nix::libc::EADDRNOTAVAIL)),
        };
        let copy = error.clone();
        assert_eq!(copy.to_string(), error.to_string());
        let (Error::Bind { error: a, .. }, Error::Bind { error: b, .. }) = (&error, &copy) else {
            unreachable!()
        };
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(b.raw_os_error(), Some(nix::libc::EADDRNOTAVAIL));
    }
}
