//! Outgoing connections bound to the configured source.
//!
//! [`Connector::connect`] runs these steps, and stops at the first failure:
//!
//! 1. pick the source by the destination's family and check the link-local
//!    rules (`select_source`), before any syscall;
//! 2. resolve scope names to interface indexes, and compare the source's and
//!    destination's link-local scopes;
//! 3. make the socket, set the identity options (device, freebind) — fatal on
//!    failure — and the tuning options — logged on failure;
//! 4. bind the source by the [`PortPolicy`]; a failed bind is returned, and
//!    never followed by an unbound connect;
//! 5. connect within the timeout;
//! 6. compare `getsockname` with the configured source (IP, and the scope for
//!    link-local); a mismatch closes the connection and is an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::addr::{CanonicalIp, Endpoint, Family, FamilyPolicy, Role, ScopedIp, Sources};
use crate::error::{Attempt, ConfigError, Error};
use crate::sock::{self, Keepalive, Tuning};

mod happy_eyeballs;
mod source;

#[doc(hidden)]
pub use happy_eyeballs::interleave;
pub(crate) use source::resolve_scope;
#[doc(hidden)]
pub use source::{check_scope, select_source};

/// The ports an outgoing connection may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PortPolicy {
    /// Any ephemeral port. The source is bound with port 0 and
    /// `IP_BIND_ADDRESS_NO_PORT`, so no port is reserved before `connect`
    /// and one source IP can carry a connection per 4-tuple.
    #[default]
    Ephemeral,
    /// A port from `low..=high`, through `IP_LOCAL_PORT_RANGE` where the
    /// kernel has it (Linux 6.3) and the range overlaps the host's
    /// ephemeral range (`net.ipv4.ip_local_port_range`, which is all that
    /// option can pick from), else by trying ports from a random start.
    /// When no port of the range is free, the connect fails with
    /// [`Error::PortsExhausted`] naming the range.
    Range {
        /// Lowest port, at least 1.
        low: u16,
        /// Highest port, at least `low`.
        high: u16,
    },
    /// A privileged port, tried from 1023 down to 512, as libtirpc's
    /// `bindresvport` and GlusterFS's `bind-insecure off` do. Needs root or
    /// `CAP_NET_BIND_SERVICE`.
    Privileged,
}

/// The ports [`PortPolicy::Privileged`] tries, highest first.
pub const PRIVILEGED_PORTS: std::ops::RangeInclusive<u16> = 512..=1023;

/// Options for [`Connector`]: public fields, each with its default listed.
/// Set the ones you need and take the rest from [`Default`]:
///
/// ```
/// use std::time::Duration;
/// use peerwire::{ConnectOptions, PortPolicy, ScopedIp, Sources};
///
/// # fn main() -> Result<(), peerwire::Error> {
/// let options = ConnectOptions {
///     sources: Sources::new().with("192.0.2.10".parse::<ScopedIp>()?),
///     port_policy: PortPolicy::Ephemeral,
///     connect_timeout: Duration::from_secs(5),
///     ..ConnectOptions::default()
/// };
/// # let _ = options;
/// # Ok(())
/// # }
/// ```
///
/// The defaults: no sources (the kernel chooses), strict family policy,
/// ephemeral ports with `IP_BIND_ADDRESS_NO_PORT`, no freebind, no waiting
/// for tentative addresses, no device, 10 s connect timeout, 250 ms Happy
/// Eyeballs delay, `TCP_NODELAY` on, keepalive 20 s / 2 s / 9 probes,
/// `TCP_USER_TIMEOUT` 42 s, no TOS.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The source addresses, at most one per family; the destination's
    /// family picks one. Build with [`Sources::new`] and [`Sources::with`],
    /// which replaces any earlier source of the same family. Default: none
    /// (the kernel chooses).
    pub sources: Sources,
    /// What to do when the destination's family has no source. Default:
    /// [`FamilyPolicy::Strict`].
    pub family_policy: FamilyPolicy,
    /// Which local ports to use. Default: [`PortPolicy::Ephemeral`].
    pub port_policy: PortPolicy,
    /// Sets `IP_BIND_ADDRESS_NO_PORT` before binding a source with port 0
    /// ([`PortPolicy::Ephemeral`], and [`PortPolicy::Range`] through
    /// `IP_LOCAL_PORT_RANGE`). Default: on.
    ///
    /// With it, the kernel picks the port at `connect`, per 4-tuple, so one
    /// source IP carries a full ephemeral range of connections to *each*
    /// destination. Without it, `bind` must reserve a port that is free for
    /// every destination, and one source IP runs out after one ephemeral
    /// range in all (about 28,000 ports with Linux's default
    /// `net.ipv4.ip_local_port_range` of 32768–60999): `bind` then fails
    /// with `EADDRINUSE`. Turn it off only to show that limit.
    pub bind_address_no_port: bool,
    /// Sets `IP_FREEBIND`/`IPV6_FREEBIND`, so that a source that is not on
    /// this host, or still tentative, can be bound. Default: off.
    pub freebind: bool,
    /// While an IPv6 source is tentative (duplicate address detection),
    /// retry the bind every 50 ms for up to this long. Default: `None`, no
    /// waiting.
    pub wait_tentative: Option<Duration>,
    /// Binds the socket to an interface with `SO_BINDTODEVICE` (needs
    /// `CAP_NET_RAW` on older kernels). Default: `None`.
    pub device: Option<String>,
    /// How long the TCP connect may take; must be positive. Default: 10 s.
    pub connect_timeout: Duration,
    /// The delay before the next Happy Eyeballs attempt starts
    /// (RFC 8305 §5 "Connection Attempt Delay"). Default: 250 ms.
    pub happy_eyeballs_delay: Duration,
    /// `TCP_NODELAY`. Default: on.
    pub nodelay: bool,
    /// TCP keepalive, or `None` for off. Default: 20 s idle, 2 s between
    /// probes, 9 probes.
    pub keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT`, or `None` for the kernel's default. Default: 42 s.
    pub user_timeout: Option<Duration>,
    /// `IP_TOS` for IPv4, `IPV6_TCLASS` for IPv6, or `None` to leave it
    /// unset. Default: `None`.
    pub tos: Option<u8>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            sources: Sources::new(),
            family_policy: FamilyPolicy::Strict,
            port_policy: PortPolicy::Ephemeral,
            bind_address_no_port: true,
            freebind: false,
            wait_tentative: None,
            device: None,
            connect_timeout: Duration::from_secs(10),
            happy_eyeballs_delay: Duration::from_millis(250),
            nodelay: true,
            keepalive: Some(Keepalive {
                time: Duration::from_secs(20),
                interval: Duration::from_secs(2),
                count: 9,
            }),
            user_timeout: Some(Duration::from_secs(42)),
            tos: None,
        }
    }
}

impl ConnectOptions {
    /// Checks the options on their own: a port range must satisfy `1 <=
    /// low <= high` and the connect timeout must be positive.
    /// [`crate::Client::new`] calls it, so that a client with options that
    /// can never connect is refused when it is made, not at every attempt
    /// (where each failure would count toward the breaker).
    pub fn validate(&self) -> Result<(), Error> {
        if let PortPolicy::Range { low, high } = self.port_policy
            && (low == 0 || low > high)
        {
            return Err(ConfigError::PortRange { low, high }.into());
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ConnectTimeout.into());
        }
        Ok(())
    }
}

/// Makes outgoing connections from the configured sources. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Connector {
    options: Arc<ConnectOptions>,
}

/// A socket with its source bound and its options set, not yet connected.
///
/// [`Connector::prepare`] returns it, so that the bound state can be
/// inspected: with [`PortPolicy::Ephemeral`], [`Prepared::local_addr`] shows
/// port 0, because no port is reserved before `connect`.
#[derive(Debug)]
pub struct Prepared {
    socket: Socket,
    destination: Endpoint,
    remote: SocketAddr,
    /// The configured source and its canonical form, for the post-connect check.
    source: Option<(ScopedIp, CanonicalIp)>,
    timeout: Duration,
    /// The port range the kernel picks from at `connect`
    /// (`IP_LOCAL_PORT_RANGE`), when one is set: its exhaustion is
    /// `EADDRNOTAVAIL` at `connect`.
    kernel_range: Option<KernelRange>,
}

/// A port range handed to the kernel with `IP_LOCAL_PORT_RANGE`, and the
/// source it applies to, to name them when the range runs out.
#[derive(Clone, Debug)]
struct KernelRange {
    source_addr: ScopedIp,
    low: u16,
    high: u16,
}

impl KernelRange {
    fn exhausted(self, destination: Endpoint) -> Error {
        Error::PortsExhausted {
            source_addr: self.source_addr,
            destination,
            low: self.low,
            high: self.high,
        }
    }
}

/// An established connection, with the addresses it was checked against.
#[derive(Debug)]
pub struct Connected {
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    source: Option<ScopedIp>,
}

impl Connected {
    /// The stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The stream, mutably.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Takes the stream.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// The local address (`getsockname`), already checked against the
    /// configured source.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The remote address (`getpeername`).
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }

    /// The configured source this connection was bound to, or `None` when
    /// the kernel chose.
    pub fn source(&self) -> Option<&ScopedIp> {
        self.source.as_ref()
    }
}

impl Connector {
    /// A connector with these options.
    pub fn new(options: ConnectOptions) -> Connector {
        Connector {
            options: Arc::new(options),
        }
    }

    /// The options.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Connects to one destination from the source its family selects.
    ///
    /// Cancel-safe: dropping the future closes the socket, whatever step it
    /// had reached.
    pub async fn connect(&self, destination: &Endpoint) -> Result<Connected, Error> {
        self.prepare(destination).await?.connect().await
    }

    /// Steps 1 to 4 of [`Connector::connect`]: checks, socket, options and
    /// bind, without connecting. Waits only when
    /// [`ConnectOptions::wait_tentative`] is set. Cancel-safe.
    pub async fn prepare(&self, destination: &Endpoint) -> Result<Prepared, Error> {
        let opts = &*self.options;
        opts.validate()?;
        let source = select_source(&opts.sources, opts.family_policy, destination)?;
        let dest_scope = source::resolve_scope(destination.host(), Role::Destination)?;
        let source = match source {
            Some(source) => {
                let scope = source::resolve_scope(source, Role::Source)?;
                if source.is_link_local()
                    && destination.host().is_link_local()
                    && scope != dest_scope
                {
                    return Err(Error::ScopeMismatch {
                        source_addr: source.clone(),
                        destination: destination.clone(),
                    });
                }
                Some((source.clone(), scope))
            }
            None => None,
        };
        let remote = sock::socket_addr(destination.ip(), dest_scope, destination.port());
        let deadline = opts.wait_tentative.map(|limit| Instant::now() + limit);
        loop {
            match self.bind_socket(destination, source.as_ref()) {
                Err(Error::Bind {
                    source_addr,
                    port,
                    destination,
                    error,
                }) if sock::is_addr_not_available(&error)
                    && source_addr.family() == Family::V6
                    && deadline.is_some_and(|d| Instant::now() < d) =>
                {
                    debug!(%source_addr, port, %destination, "source not available yet (tentative?); retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error),
                Ok((socket, kernel_range)) => {
                    return Ok(Prepared {
                        socket,
                        destination: destination.clone(),
                        remote,
                        source: source.map(|(ip, scope)| {
                            let canonical = CanonicalIp::new(ip.ip(), scope);
                            (ip, canonical)
                        }),
                        timeout: opts.connect_timeout,
                        kernel_range,
                    });
                }
            }
        }
    }

    /// Makes the socket, sets its options and binds it (steps 3 and 4).
    /// Returns the range the kernel picks the port from at `connect`, when
    /// the port policy's range was handed to it.
    fn bind_socket(
        &self,
        destination: &Endpoint,
        source: Option<&(ScopedIp, u32)>,
    ) -> Result<(Socket, Option<KernelRange>), Error> {
        let opts = &*self.options;
        let family = destination.family();
        let fatal = |what: &'static str| {
            let address = destination.clone();
            move |error| Error::Socket {
                what,
                address,
                error: Arc::new(error),
            }
        };
        let socket = sock::tcp_socket(family).map_err(fatal("create a socket"))?;
        if let Some(device) = &opts.device {
            sock::bind_device(&socket, device).map_err(fatal("set SO_BINDTODEVICE"))?;
        }
        let binds = source.is_some() || opts.port_policy != PortPolicy::Ephemeral;
        if opts.freebind && binds {
            sock::set_freebind(&socket, family).map_err(fatal("set IP_FREEBIND"))?;
        }
        let tuning = Tuning {
            nodelay: opts.nodelay,
            keepalive: opts.keepalive,
            user_timeout: opts.user_timeout,
            tos: opts.tos,
        };
        sock::apply_tuning(&socket, family, &tuning);

        let (bind_ip, scope) = match source {
            Some((ip, scope)) => (ip.clone(), *scope),
            None if binds => (ScopedIp::unspecified(family), 0),
            None => return Ok((socket, None)),
        };
        let bind_error = |port: u16, error| Error::Bind {
            source_addr: bind_ip.clone(),
            port,
            destination: destination.clone(),
            error: Arc::new(error),
        };
        let bind_at = |port: u16| sock::bind(&socket, sock::socket_addr(bind_ip.ip(), scope, port));
        let ephemeral = |socket: &Socket| {
            if !opts.bind_address_no_port {
                return bind_at(0).map_err(|e| bind_error(0, e));
            }
            if let Err(error) = sock::set_bind_address_no_port(socket) {
                warn!(%error, "could not set IP_BIND_ADDRESS_NO_PORT; the port is reserved at bind");
            }
            bind_at(0).map_err(|e| bind_error(0, e))
        };
        let mut kernel_range = None;
        match opts.port_policy {
            PortPolicy::Ephemeral => ephemeral(&socket)?,
            PortPolicy::Range { low, high } => match kernel_port_range(&socket, low, high) {
                Ok(()) => {
                    let range = KernelRange {
                        source_addr: bind_ip.clone(),
                        low,
                        high,
                    };
                    match ephemeral(&socket) {
                        // Without IP_BIND_ADDRESS_NO_PORT, bind picks the
                        // port, and a range with no free port is EADDRINUSE.
                        Err(Error::Bind { error, .. }) if sock::is_addr_in_use(&error) => {
                            return Err(range.exhausted(destination.clone()));
                        }
                        result => result?,
                    }
                    kernel_range = Some(range);
                }
                Err(error) => {
                    if !sock::is_unsupported_option(&error) {
                        warn!(%error, "IP_LOCAL_PORT_RANGE failed; trying ports one by one");
                    }
                    let span = u32::from(high - low) + 1;
                    let start = rand::random_range(0..span);
                    let ports = (0..span).map(|i| low + ((start + i) % span) as u16);
                    bind_loop(ports, bind_at, bind_error, || Error::PortsExhausted {
                        source_addr: bind_ip.clone(),
                        destination: destination.clone(),
                        low,
                        high,
                    })?;
                }
            },
            PortPolicy::Privileged => {
                bind_loop(PRIVILEGED_PORTS.rev(), bind_at, bind_error, || {
                    Error::PortsExhausted {
                        source_addr: bind_ip.clone(),
                        destination: destination.clone(),
                        low: *PRIVILEGED_PORTS.start(),
                        high: *PRIVILEGED_PORTS.end(),
                    }
                })?;
            }
        }
        Ok((socket, kernel_range))
    }

    /// Connects to the first destination that answers, by Happy Eyeballs
    /// (RFC 8305): destinations are ordered by `interleave`, an attempt
    /// starts when the previous one fails or after the Happy Eyeballs
    /// delay, each with its own family's source. The first connection wins;
    /// the others are closed. When all fail, [`Error::AllAttemptsFailed`]
    /// lists every attempt (a single destination returns its own error).
    ///
    /// Must run inside a tokio runtime that can spawn tasks. Cancel-safe:
    /// dropping the future closes every attempt's socket.
    pub async fn connect_any(&self, destinations: &[Endpoint]) -> Result<Connected, Error> {
        match destinations {
            [] => return Err(Error::NoDestinations("an empty list".into())),
            [only] => return self.connect(only).await,
            _ => {}
        }
        let order = interleave(destinations);
        let mut running = JoinSet::new();
        let mut failed: Vec<(usize, Attempt)> = Vec::new();
        let mut next = 0;
        loop {
            if next < order.len() {
                let (index, connector, dest) = (next, self.clone(), order[next].clone());
                debug!(destination = %dest, attempt = index + 1, "starting connection attempt");
                running.spawn(async move { (index, connector.connect(&dest).await) });
                next += 1;
            }
            let delay = tokio::time::sleep(self.options.happy_eyeballs_delay);
            tokio::pin!(delay);
            // Wait for a result, or for the delay when more attempts remain.
            let result = tokio::select! {
                joined = running.join_next() => joined,
                () = &mut delay, if next < order.len() => None,
            };
            match result {
                None if next < order.len() => continue,
                None => break,
                Some(Ok((_, Ok(connected)))) => return Ok(connected),
                Some(Ok((index, Err(error)))) => {
                    let destination = order[index].clone();
                    let source = select_source(
                        &self.options.sources,
                        self.options.family_policy,
                        &destination,
                    )
                    .ok()
                    .flatten()
                    .cloned();
                    debug!(%destination, %error, "connection attempt failed");
                    failed.push((
                        index,
                        Attempt {
                            destination,
                            source,
                            error,
                        },
                    ));
                    if running.is_empty() && next >= order.len() {
                        break;
                    }
                    // A failure starts the next attempt at once (RFC 8305 §5).
                }
                Some(Err(join_error)) => std::panic::resume_unwind(join_error.into_panic()),
            }
        }
        failed.sort_by_key(|(index, _)| *index);
        Err(Error::AllAttemptsFailed {
            attempts: failed.into_iter().map(|(_, attempt)| attempt).collect(),
        })
    }

    /// Resolves `host` and connects with [`Connector::connect_any`]. A
    /// literal address, scoped or not, is used as it is.
    ///
    /// Cancel-safe: dropping the future during the lookup abandons it (the
    /// resolver's thread finishes on its own), and during the connect
    /// closes every attempt's socket, as [`Connector::connect_any`].
    pub async fn connect_host(&self, host: &str, port: u16) -> Result<Connected, Error> {
        if let Ok(ip) = host.parse::<ScopedIp>() {
            return self.connect(&Endpoint::new(ip, port)).await;
        }
        let resolved = tokio::net::lookup_host((host, port))
            .await
            .map_err(|error| Error::Resolve {
                host: host.to_owned(),
                error: Arc::new(error),
            })?;
        let mut destinations: Vec<Endpoint> = Vec::new();
        for addr in resolved {
            let endpoint = Endpoint::from(addr);
            if !destinations.contains(&endpoint) {
                destinations.push(endpoint);
            }
        }
        if destinations.is_empty() {
            return Err(Error::NoDestinations(host.to_owned()));
        }
        self.connect_any(&destinations).await
    }
}

/// Hands the port range to the kernel (`IP_LOCAL_PORT_RANGE`), when that
/// honours it. The kernel applies a socket's range only within the host's
/// ephemeral range (`net.ipv4.ip_local_port_range`, also for IPv6), using
/// the overlap of the two, and silently ignores a range that does not
/// overlap it at all: then, or when the host's range cannot be read, this
/// fails as unsupported and the caller binds ports one by one.
fn kernel_port_range(socket: &Socket, low: u16, high: u16) -> std::io::Result<()> {
    let unsupported = |why: String| {
        debug!(low, high, "{why}; IP_LOCAL_PORT_RANGE not used");
        Err(std::io::ErrorKind::Unsupported.into())
    };
    match sock::ephemeral_port_range() {
        Ok((host_low, host_high)) if high < host_low || host_high < low => unsupported(format!(
            "the range lies outside the host's ephemeral ports {host_low}-{host_high}"
        )),
        Ok(_) => sock::set_local_port_range(socket, low, high),
        Err(error) => unsupported(format!("the host's ephemeral ports are unknown ({error})")),
    }
}

/// Binds the first port of `ports` that is not in use. Any error other than
/// `EADDRINUSE` ends the loop: it will not go away on the next port.
fn bind_loop(
    ports: impl Iterator<Item = u16>,
    bind_at: impl Fn(u16) -> std::io::Result<()>,
    bind_error: impl Fn(u16, std::io::Error) -> Error,
    exhausted: impl FnOnce() -> Error,
) -> Result<(), Error> {
    for port in ports {
        match bind_at(port) {
            Ok(()) => return Ok(()),
            Err(error) if sock::is_addr_in_use(&error) => continue,
            Err(error) => return Err(bind_error(port, error)),
        }
    }
    Err(exhausted())
}

impl Prepared {
    /// The bound local address (`getsockname`): the unspecified address
    /// with port 0 when nothing was bound, and port 0 under
    /// [`PortPolicy::Ephemeral`].
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("socket has a non-IP local address"))
    }

    /// The destination.
    pub fn destination(&self) -> &Endpoint {
        &self.destination
    }

    /// Connects within the timeout, then checks the local address against
    /// the configured source (steps 5 and 6). Cancel-safe.
    pub async fn connect(self) -> Result<Connected, Error> {
        let Prepared {
            socket,
            destination,
            remote,
            source,
            timeout,
            kernel_range,
        } = self;
        let bound = source
            .as_ref()
            .and_then(|_| socket.local_addr().ok()?.as_socket());
        let std_stream: std::net::TcpStream = socket.into();
        let socket = TcpSocket::from_std_stream(std_stream);
        let stream = match tokio::time::timeout(timeout, socket.connect(remote)).await {
            Ok(Ok(stream)) => stream,
            // The kernel picks the port at connect, from the range it was
            // given; none free toward this destination is EADDRNOTAVAIL.
            Ok(Err(error)) if kernel_range.is_some() && sock::is_addr_not_available(&error) => {
                let range = kernel_range.expect("checked just above");
                debug!(%error, low = range.low, high = range.high, "no free port in the range");
                return Err(range.exhausted(destination));
            }
            Ok(Err(error)) => {
                return Err(Error::Connect {
                    source_addr: bound,
                    destination,
                    error: Arc::new(error),
                });
            }
            Err(_) => {
                return Err(Error::ConnectTimeout {
                    source_addr: bound,
                    destination,
                    timeout,
                });
            }
        };
        let io_error = |error| Error::Connect {
            source_addr: bound,
            destination: destination.clone(),
            error: Arc::new(error),
        };
        let local = stream.local_addr().map_err(io_error)?;
        let remote = stream.peer_addr().map_err(io_error)?;
        if let Some((configured, expected)) = &source
            && CanonicalIp::from(local) != *expected
        {
            return Err(Error::SourceMismatch {
                configured: configured.clone(),
                actual: local,
                remote,
            });
        }
        debug!(%local, %remote, "connected");
        Ok(Connected {
            stream,
            local,
            remote,
            source: source.map(|(configured, _)| configured),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io;

    fn run(
        ports: &[u16],
        outcome: impl Fn(u16) -> io::Result<()>,
    ) -> (Result<(), Error>, Vec<u16>) {
        let tried = RefCell::new(Vec::new());
        let result = bind_loop(
            ports.iter().copied(),
            |port| {
                tried.borrow_mut().push(port);
                outcome(port)
            },
            |port, error| Error::Bind {
                source_addr: "192.0.2.10".parse().unwrap(),
                port,
                destination: "192.0.2.1:1".parse().unwrap(),
                error: Arc::new(error),
            },
            || Error::PortsExhausted {
                source_addr: "192.0.2.10".parse().unwrap(),
                destination: "192.0.2.1:1".parse().unwrap(),
                low: 1,
                high: 3,
            },
        );
        (result, tried.into_inner())
    }

    #[test]
    fn bind_loop_skips_ports_in_use() {
        let (result, tried) = run(&[3, 2, 1], |port| {
            if port == 3 {
                Err(io::ErrorKind::AddrInUse.into())
            } else {
                Ok(())
            }
        });
        assert!(result.is_ok());
        assert_eq!(tried, [3, 2]);
    }

    #[test]
    fn bind_loop_stops_on_other_errors() {
        let (result, tried) = run(&[3, 2, 1], |_| Err(io::ErrorKind::PermissionDenied.into()));
        assert!(matches!(result, Err(Error::Bind { port: 3, .. })));
        assert_eq!(tried, [3]);
    }

    #[test]
    fn bind_loop_reports_exhaustion() {
        let (result, tried) = run(&[3, 2, 1], |_| Err(io::ErrorKind::AddrInUse.into()));
        assert!(matches!(
            result,
            Err(Error::PortsExhausted {
                low: 1,
                high: 3,
                ..
            })
        ));
        assert_eq!(tried, [3, 2, 1]);
    }
}
