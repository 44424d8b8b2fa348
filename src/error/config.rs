//! [`ConfigError`]: options that contradict each other or are out of
//! range, found before any socket is made.

use std::fmt;

use ipnet::IpNet;

use crate::addr::{Address, Endpoint};

/// Why options were refused, in [`Error::Config`](crate::Error::Config).
/// Each is found when the options are used to build something (a
/// [`Client`](crate::Client), a listener, [`Server::serve`](crate::Server::serve),
/// an update), never on a later connect; retrying will not help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`PortPolicy::Range`](crate::PortPolicy::Range) must satisfy
    /// `1 <= low <= high`.
    #[error("port range {low}-{high} must satisfy 1 <= low <= high")]
    PortRange {
        /// The range's lowest port.
        low: u16,
        /// The range's highest port.
        high: u16,
    },
    /// [`ConnectOptions::connect_timeout`](crate::ConnectOptions::connect_timeout)
    /// is zero.
    #[error("connect timeout must be positive")]
    ConnectTimeout,
    /// [`ListenOptions::dual_stack`](crate::ListenOptions::dual_stack) was
    /// set for an address other than `[::]`.
    #[error("dual_stack applies to [::] only, not to {address}")]
    DualStack {
        /// The listen address.
        address: Endpoint,
    },
    /// [`ListenOptions::unix_mode`](crate::ListenOptions::unix_mode) has
    /// bits beyond `0o7777`.
    #[error("unix_mode {mode:o} is not a file mode (at most 7777 in octal)")]
    UnixMode {
        /// The mode given.
        mode: u32,
    },
    /// An admission network is IPv4-mapped (`::ffff:0:0/96`) but shorter
    /// than `/96`, so it has no IPv4 form to match the canonical
    /// addresses admission compares.
    #[error("admission network {net} is IPv4-mapped but shorter than /96: it has no IPv4 form")]
    MappedNetwork {
        /// The network.
        net: IpNet,
    },
    /// [`ServerOptions::max_record_before_hello`](crate::ServerOptions::max_record_before_hello)
    /// is below the longest HELLO or above 1 GiB.
    #[error(
        "ServerOptions::max_record_before_hello is {bytes} bytes: it must be from {min} (the longest HELLO) to 1 GiB"
    )]
    RecordBeforeHello {
        /// The limit given.
        bytes: usize,
        /// The least it may be,
        /// [`ServerOptions::MIN_RECORD_BEFORE_HELLO`](crate::ServerOptions::MIN_RECORD_BEFORE_HELLO).
        min: usize,
    },
    /// `update_tls` on a client or server built without TLS: TLS cannot be
    /// switched on while it runs.
    #[error(
        "{} runs without TLS: it cannot be switched on while it runs ({})",
        Who(peer),
        Remedy(peer)
    )]
    TlsOff {
        /// The client's peer; `None` for a server.
        peer: Option<Address>,
    },
    /// [`ClientOptions::identity`](crate::ClientOptions::identity) on a
    /// Unix-socket client: the HELLO handshake does not apply there, where
    /// the server knows its peer by its credentials.
    #[error(
        "{peer}: the HELLO handshake (ClientOptions::identity) does not apply to Unix sockets, where the server knows its peer by its credentials"
    )]
    IdentityOverUnix {
        /// The socket's path, as the client's peer.
        peer: Address,
    },
}

struct Who<'a>(&'a Option<Address>);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(peer) => write!(f, "the client of {peer}"),
            None => f.write_str("this server"),
        }
    }
}

struct Remedy<'a>(&'a Option<Address>);

impl fmt::Display for Remedy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "set ClientOptions::tls and make a new client",
            None => "set ServerOptions::tls and restart",
        })
    }
}
