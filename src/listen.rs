//! Listening sockets on explicit addresses.
//!
//! `IPV6_V6ONLY` is always set explicitly, never left to the
//! `net.ipv6.bindv6only` sysctl: on for a specific IPv6 address, and for
//! `[::]` unless [`ListenOptions::dual_stack`] asks for the one socket to
//! take IPv4 too. A dual-stack socket sees IPv4 peers as IPv4-mapped IPv6
//! addresses; [`CanonicalIp`](crate::CanonicalIp) turns them back into IPv4.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::addr::{Endpoint, Family, Role};
use crate::connect::{check_scope, resolve_scope};
use crate::error::{ConfigError, Error};
use crate::sock;

mod unix;
pub use unix::{UnixSocketListener, listen_unix};

/// Options for [`listen`]: public fields, each with its default listed.
/// Set the ones you need and take the rest from [`Default`]:
///
/// ```
/// use peerwire::ListenOptions;
///
/// let options = ListenOptions {
///     dual_stack: true,
///     ..ListenOptions::default()
/// };
/// # let _ = options;
/// ```
///
/// The defaults: backlog 1024, IPv6-only, `SO_REUSEADDR` on, no device,
/// Unix socket files with mode `0o600`.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// The `listen(2)` backlog. Default: 1024.
    pub backlog: u32,
    /// For `[::]` only: clear `IPV6_V6ONLY`, so that one socket accepts both
    /// families. Any other address with this set is a configuration error.
    /// Default: off.
    pub dual_stack: bool,
    /// `SO_REUSEADDR`, so a restarted server can listen while old
    /// connections sit in TIME_WAIT. Default: on.
    pub reuse_address: bool,
    /// `SO_BINDTODEVICE`: accept only through this interface. Default:
    /// `None`.
    pub device: Option<String>,
    /// The mode of a Unix socket file ([`listen_unix`]): who may connect
    /// (write permission lets a process connect). Set before the socket
    /// listens, so no connection arrives under a looser mode. Default
    /// `0o600`: the owner (and root) only; widen it to a group with
    /// `0o660` and [`UnixAdmission`](crate::UnixAdmission).
    pub unix_mode: u32,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: 1024,
            dual_stack: false,
            reuse_address: true,
            device: None,
            unix_mode: 0o600,
        }
    }
}

/// Listens on `address`. A link-local address needs a scope, which is
/// resolved here; port 0 picks a free port (see
/// [`TcpListener::local_addr`]).
///
/// Must be called inside a tokio runtime.
pub fn listen(address: &Endpoint, options: &ListenOptions) -> Result<TcpListener, Error> {
    check_scope(address.host(), Role::Listen)?;
    let family = address.family();
    if options.dual_stack && !(family == Family::V6 && address.ip().is_unspecified()) {
        return Err(ConfigError::DualStack {
            address: address.clone(),
        }
        .into());
    }
    let scope = resolve_scope(address.host(), Role::Listen)?;
    let fatal = |what: &'static str| {
        move |error| Error::Socket {
            what,
            address: address.clone(),
            error: Arc::new(error),
        }
    };
    let socket = sock::tcp_socket(family).map_err(fatal("create a socket"))?;
    if family == Family::V6 {
        sock::set_v6_only(&socket, !options.dual_stack).map_err(fatal("set IPV6_V6ONLY"))?;
    }
    if options.reuse_address {
        sock::set_reuse_address(&socket).map_err(fatal("set SO_REUSEADDR"))?;
    }
    if let Some(device) = &options.device {
        sock::bind_device(&socket, device).map_err(fatal("set SO_BINDTODEVICE"))?;
    }
    let listen_error = |error| Error::Listen {
        address: address.clone(),
        error: Arc::new(error),
    };
    sock::bind(
        &socket,
        sock::socket_addr(address.ip(), scope, address.port()),
    )
    .map_err(listen_error)?;
    sock::listen(&socket, options.backlog).map_err(listen_error)?;
    let std_listener: std::net::TcpListener = socket.into();
    TcpListener::from_std(std_listener).map_err(listen_error)
}
