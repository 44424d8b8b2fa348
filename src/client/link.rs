//! A connected byte stream and the addresses it runs between.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;

use crate::connect::Connected;
use crate::error::Error;
use crate::stream::{Io, Transport};

/// A connected byte stream and the addresses it runs between.
pub struct Link {
    pub(crate) transport: Transport,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    /// Bytes read past the handshake reply, for the connection's reader.
    pub(crate) leftover: BytesMut,
}

impl Link {
    /// A link over any byte stream `io`, between `local` and `remote`.
    pub fn new(io: impl Io, local: SocketAddr, remote: SocketAddr) -> Link {
        Link {
            transport: Transport::other(Box::new(io)),
            local,
            remote,
            leftover: BytesMut::new(),
        }
    }

    /// Our address on the link.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peer's address on the link.
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl From<Connected> for Link {
    /// A TCP link: read by readiness, so that an idle connection holds no
    /// read buffer.
    fn from(connected: Connected) -> Link {
        let (local, remote) = (connected.local_addr(), connected.peer_addr());
        Link {
            transport: Transport::tcp(connected.into_stream()),
            local,
            remote,
            leftover: BytesMut::new(),
        }
    }
}

/// The future a transport's connect function returns.
pub type LinkFuture = Pin<Box<dyn Future<Output = Result<Link, Error>> + Send>>;

pub(crate) type ConnectFn = Arc<dyn Fn() -> LinkFuture + Send + Sync>;
