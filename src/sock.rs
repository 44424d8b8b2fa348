//! All raw socket code: socket creation, options, binding. The only module
//! with `cfg(target_os)`; no `unsafe` (nix makes the calls).
//!
//! Each helper makes one OS call, or one loop of them, and says which.
//! Linux is the target; other Unixes compile, and the Linux-only options
//! report [`io::ErrorKind::Unsupported`] there.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

use crate::addr::Family;

/// A new non-blocking, close-on-exec TCP socket of `family`
/// (`socket(2)`).
pub(crate) fn tcp_socket(family: Family) -> io::Result<Socket> {
    let domain = match family {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    };
    let socket = Socket::new(
        domain,
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    Ok(socket)
}

/// The index of the interface `name` (`if_nametoindex(3)`).
pub(crate) fn interface_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}

/// A socket address from an IP, a resolved scope and a port.
pub(crate) fn socket_addr(ip: IpAddr, scope_id: u32, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope_id)),
    }
}

/// `bind(2)`.
pub(crate) fn bind(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    socket.bind(&SockAddr::from(addr))
}

/// `IP_BIND_ADDRESS_NO_PORT`: a bind with port 0 reserves no port; the
/// kernel picks one at `connect`, per 4-tuple, so tens of thousands of
/// connections can share one source IP. Applies to IPv6 sockets too.
pub(crate) fn set_bind_address_no_port(socket: &Socket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(socket, sockopt::IpBindAddressNoPort, &true).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// `IP_LOCAL_PORT_RANGE` (Linux 6.3): the ephemeral ports this socket may
/// use. Fails with `ENOPROTOOPT` on older kernels; the caller then falls
/// back to a bind loop.
pub(crate) fn set_local_port_range(socket: &Socket, low: u16, high: u16) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::setsockopt;
        let range: u32 = (u32::from(high) << 16) | u32::from(low);
        setsockopt(socket, local_port_range::IpLocalPortRange, &range).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, low, high);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// `IP_LOCAL_PORT_RANGE`, which nix does not define: nix's `sockopt_impl!`
/// makes the option type, and nix's own `setsockopt` call (with the value's
/// pointer and exact size) stays the only place the FFI happens.
#[cfg(target_os = "linux")]
mod local_port_range {
    // The macro's expansion names `libc` and its helper macros unqualified.
    use nix::libc;
    use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};

    /// The option's value, from linux/in.h (not in libc for every target).
    const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

    sockopt_impl!(
        /// `IP_LOCAL_PORT_RANGE` (Linux 6.3): a `u32` with the highest
        /// port in its upper 16 bits and the lowest in its lower 16.
        IpLocalPortRange,
        Both,
        libc::IPPROTO_IP,
        IP_LOCAL_PORT_RANGE,
        u32
    );
}

/// The host's ephemeral port range, `net.ipv4.ip_local_port_range` of the
/// caller's network namespace (it applies to IPv6 too): one read of
/// `/proc/sys/net/ipv4/ip_local_port_range`.
pub(crate) fn ephemeral_port_range() -> io::Result<(u16, u16)> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")?;
        let mut ports = text.split_whitespace().map(str::parse::<u16>);
        match (ports.next(), ports.next()) {
            (Some(Ok(low)), Some(Ok(high))) if low <= high => Ok((low, high)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable ip_local_port_range {text:?}"),
            )),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// True when an error means the kernel lacks an option.
pub(crate) fn is_unsupported_option(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Unsupported
        || error.raw_os_error() == Some(nix::libc::ENOPROTOOPT)
}

/// True for `EADDRINUSE`.
pub(crate) fn is_addr_in_use(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::AddrInUse
}

/// True for `EADDRNOTAVAIL`.
pub(crate) fn is_addr_not_available(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::AddrNotAvailable
}

/// `IP_FREEBIND` / `IPV6_FREEBIND`: bind an address that is not (yet) on
/// this host, or still tentative.
pub(crate) fn set_freebind(socket: &Socket, family: Family) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    {
        match family {
            Family::V4 => socket.set_freebind_v4(true),
            Family::V6 => socket.set_freebind_v6(true),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    {
        let _ = (socket, family);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// `SO_BINDTODEVICE`: the socket sends and receives only through `device`.
pub(crate) fn bind_device(socket: &Socket, device: &str) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    {
        socket.bind_device(Some(device.as_bytes()))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    {
        let _ = (socket, device);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// `IPV6_V6ONLY`.
pub(crate) fn set_v6_only(socket: &Socket, only: bool) -> io::Result<()> {
    socket.set_only_v6(only)
}

/// `SO_REUSEADDR`.
pub(crate) fn set_reuse_address(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)
}

/// `listen(2)`.
pub(crate) fn listen(socket: &Socket, backlog: u32) -> io::Result<()> {
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))
}

/// TCP keepalive settings: idle time before the first probe, the interval
/// between probes, and how many unanswered probes close the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub time: Duration,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub count: u32,
}

/// Tuning options. A failure to set one is logged, not fatal: none of them
/// changes who the peer is.
#[derive(Clone, Debug)]
pub(crate) struct Tuning {
    pub nodelay: bool,
    pub keepalive: Option<Keepalive>,
    pub user_timeout: Option<Duration>,
    pub tos: Option<u8>,
}

/// Logs a tuning option that could not be set; the connection goes on.
fn warn_unset(option: &str, result: io::Result<()>) {
    if let Err(error) = result {
        tracing::warn!(option, %error, "could not set socket option; continuing");
    }
}

/// Sets `TCP_NODELAY`, `SO_KEEPALIVE` with its three parameters,
/// `TCP_USER_TIMEOUT` and `IP_TOS`/`IPV6_TCLASS`; logs each failure.
pub(crate) fn apply_tuning(socket: &Socket, family: Family, tuning: &Tuning) {
    warn_unset("TCP_NODELAY", socket.set_tcp_nodelay(tuning.nodelay));
    set_liveness(socket, tuning.keepalive, tuning.user_timeout);
    if let Some(tos) = tuning.tos {
        match family {
            Family::V4 => warn_unset("IP_TOS", socket.set_tos_v4(u32::from(tos))),
            #[cfg(not(any(target_os = "solaris", target_os = "illumos")))]
            Family::V6 => warn_unset("IPV6_TCLASS", socket.set_tclass_v6(u32::from(tos))),
            #[cfg(any(target_os = "solaris", target_os = "illumos"))]
            Family::V6 => {}
        }
    }
}

/// Sets keepalive (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_KEEPCNT`) and `TCP_USER_TIMEOUT` on an accepted TCP connection,
/// the options that find a peer that vanished without a word; logs each
/// failure. `None` leaves an option as the kernel set it.
pub(crate) fn tune_accepted(
    stream: &tokio::net::TcpStream,
    keepalive: Option<Keepalive>,
    user_timeout: Option<Duration>,
) {
    set_liveness(&socket2::SockRef::from(stream), keepalive, user_timeout);
}

fn set_liveness(socket: &Socket, keepalive: Option<Keepalive>, user_timeout: Option<Duration>) {
    if let Some(ka) = keepalive {
        let params = TcpKeepalive::new().with_time(ka.time);
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd",
            target_os = "netbsd"
        ))]
        let params = params.with_interval(ka.interval).with_retries(ka.count);
        warn_unset("SO_KEEPALIVE", socket.set_tcp_keepalive(&params));
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    if let Some(timeout) = user_timeout {
        warn_unset(
            "TCP_USER_TIMEOUT",
            socket.set_tcp_user_timeout(Some(timeout)),
        );
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    let _ = user_timeout;
}

// ---------------------------------------------------------------------
// Unix stream sockets. The steps of placing a socket file (lock, probe,
// bind a temporary name, chmod, listen, rename) are composed in
// `listen::listen_unix`; each helper here is one OS call.

/// A new non-blocking, close-on-exec Unix stream socket (`socket(2)`
/// with `AF_UNIX`).
pub(crate) fn unix_socket() -> io::Result<Socket> {
    Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)
}

/// `bind(2)` to a path: creates the socket file, with the mode the umask
/// leaves. Nothing can connect to it before [`listen`].
pub(crate) fn bind_unix(socket: &Socket, path: &std::path::Path) -> io::Result<()> {
    socket.bind(&SockAddr::unix(path)?)
}

/// `chmod(2)` of a socket file: who may connect to it (write permission).
pub(crate) fn chmod(path: &std::path::Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// `rename(2)`: puts the socket file in place atomically, replacing a
/// stale one; a client sees the old file or the new one, never none.
pub(crate) fn rename(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    std::fs::rename(from, to)
}

/// `unlink(2)`.
pub(crate) fn unlink(path: &std::path::Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

/// What is at a path (`lstat(2)`, symbolic links not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileAt {
    /// Nothing.
    Nothing,
    /// A socket file, with its device and inode numbers.
    Socket { dev: u64, ino: u64 },
    /// Something else: a regular file, a directory, a link…
    Other,
}

/// `lstat(2)`.
pub(crate) fn file_at(path: &std::path::Path) -> io::Result<FileAt> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(FileAt::Socket {
            dev: meta.dev(),
            ino: meta.ino(),
        }),
        Ok(_) => Ok(FileAt::Other),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(FileAt::Nothing),
        Err(error) => Err(error),
    }
}

/// Whether something answers on a socket file: a non-blocking
/// `connect(2)`. `Ok` (or `EAGAIN`, a full backlog) means a server is
/// there; `ECONNREFUSED` means the file is stale (no socket listens on
/// it). The probe connection is closed at once, unread.
pub(crate) fn probe_unix(path: &std::path::Path) -> io::Result<()> {
    let socket = unix_socket()?;
    match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => Ok(()),
        Err(error) if error.raw_os_error() == Some(nix::libc::EAGAIN) => Ok(()),
        Err(error) => Err(error),
    }
}

/// True for `ECONNREFUSED`: on a Unix socket file, nothing listens.
pub(crate) fn is_refused(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::ConnectionRefused
}

/// An exclusive `flock(2)` on a lock file next to a socket path, taken
/// without waiting (`LOCK_EX | LOCK_NB`), created with mode 0600 when it
/// is missing. `Ok(None)`: another process holds it. The lock lives as
/// long as the returned value.
pub(crate) fn try_lock(path: &std::path::Path) -> io::Result<Option<UnixLock>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(UnixLock(lock))),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(errno.into()),
    }
}

/// A held lock file (see [`try_lock`]).
#[derive(Debug)]
pub(crate) struct UnixLock(nix::fcntl::Flock<std::fs::File>);

impl UnixLock {
    /// True when `path` still names the file this lock is on (`fstat(2)`
    /// and `stat(2)`): a server that stopped may have removed the lock
    /// file between our `open` and our `flock`, and a lock on a removed
    /// file excludes no one.
    pub(crate) fn is_at(&self, path: &std::path::Path) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let held = self.0.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// `listen(2)` on a bound Unix socket, as a tokio listener.
pub(crate) fn listen_unix(socket: Socket, backlog: u32) -> io::Result<tokio::net::UnixListener> {
    listen(&socket, backlog)?;
    let std_listener: std::os::unix::net::UnixListener = socket.into();
    tokio::net::UnixListener::from_std(std_listener)
}

/// Who the process at the other end of a Unix socket was when it
/// connected (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// Its effective user ID.
    pub uid: u32,
    /// Its effective group ID (the primary group only: supplementary
    /// groups are not part of `SO_PEERCRED`).
    pub gid: u32,
    /// Its process ID, when the kernel knows it (a process in another PID
    /// namespace shows as 0, which is kept as `None`).
    pub pid: Option<i32>,
}

impl fmt::Display for PeerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {} gid {}", self.uid, self.gid)?;
        match self.pid {
            Some(pid) => write!(f, " pid {pid}"),
            None => f.write_str(" pid unknown"),
        }
    }
}

/// The connecting process's credentials (`SO_PEERCRED`, taken by the
/// kernel at `connect(2)`). A pid of 0 (the peer is in another PID
/// namespace) is `None`.
pub(crate) fn peer_credentials(stream: &tokio::net::UnixStream) -> io::Result<PeerCredentials> {
    let cred = stream.peer_cred()?;
    Ok(PeerCredentials {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid().filter(|pid| *pid > 0),
    })
}

/// `connect(2)` to a Unix socket path.
pub(crate) async fn connect_unix(path: &std::path::Path) -> io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(uid: u32, gid: u32) -> PeerCredentials {
        PeerCredentials {
            uid,
            gid,
            pid: Some(42),
        }
    }

    #[test]
    fn display_names_every_credential() {
        assert_eq!(creds(0, 5).to_string(), "uid 0 gid 5 pid 42");
        let unknown = PeerCredentials {
            pid: None,
            ..creds(1, 2)
        };
        assert_eq!(unknown.to_string(), "uid 1 gid 2 pid unknown");
    }

    /// The option goes to the kernel with the level, number and encoding
    /// the kernel reads back (Linux 6.3 and later; only an older kernel may
    /// refuse it, with `ENOPROTOOPT`).
    #[cfg(target_os = "linux")]
    #[test]
    fn local_port_range_reaches_the_kernel() {
        use nix::sys::socket::getsockopt;
        let socket = tcp_socket(Family::V4).unwrap();
        match set_local_port_range(&socket, 47_160, 47_170) {
            Ok(()) => {
                let range = getsockopt(&socket, local_port_range::IpLocalPortRange).unwrap();
                assert_eq!((range >> 16, range & 0xffff), (47_170, 47_160));
            }
            Err(error) => {
                // Only a kernel older than 6.3 may refuse it.
                let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
                let release = release.trim();
                let mut numbers = release.split(|c: char| !c.is_ascii_digit());
                let major: u32 = numbers.next().unwrap().parse().unwrap();
                let minor: u32 = numbers.next().unwrap().parse().unwrap();
                assert!((major, minor) < (6, 3), "Linux {release}: {error}");
                assert_eq!(error.raw_os_error(), Some(nix::libc::ENOPROTOOPT));
            }
        }
    }
}
