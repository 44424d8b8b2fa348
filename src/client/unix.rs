//! Clients over Unix stream sockets.
//!
//! The same record marking, calls, deadlines, heartbeats, reconnect with
//! backoff and circuit breaker as over TCP; only the connect differs. A
//! Unix socket has no source to bind and no address to observe, so the
//! HELLO handshake (which checks both) does not apply: a client for a Unix
//! path with [`ClientOptions::identity`] set is a configuration error. The
//! server identifies the client by its credentials instead.
//!
//! [`Link::local_addr`] and [`Link::peer_addr`] (and the addresses in
//! [`ConnectionState::Connected`](super::ConnectionState::Connected)) of a
//! Unix link are the unspecified address `0.0.0.0:0`: the path is
//! [`Client::peer`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;

use super::link::ConnectFn;
use super::{Client, ClientOptions, Link};
use crate::addr::{Address, UNIX_NO_ADDR};
use crate::error::Error;
use crate::sock;
use crate::stream::Transport;

impl Client {
    /// A client for the server listening on the Unix socket `path`. It
    /// connects on the first call or on [`Client::connect`], within
    /// [`ConnectOptions::connect_timeout`](crate::ConnectOptions::connect_timeout);
    /// the rest of [`ClientOptions::connect`] (sources, ports, TCP options)
    /// does not apply. Connect errors are [`Error::UnixConnect`], naming the
    /// path. Must be called inside a tokio runtime.
    ///
    /// [`ClientOptions::identity`] must be `None` (see the module docs):
    /// otherwise [`Error::Config`].
    pub fn unix(path: impl Into<PathBuf>, options: ClientOptions) -> Result<Client, Error> {
        let path = path.into();
        let peer = Address::unix(path.clone())?;
        if options.identity.is_some() {
            return Err(crate::ConfigError::IdentityOverUnix { peer }.into());
        }
        let prebuilt = super::prebuild_tls(&peer, &options)?;
        let timeout = options.connect.connect_timeout;
        let path: Arc<Path> = path.into();
        let connect: ConnectFn = Arc::new(move || {
            let path = path.clone();
            Box::pin(async move { connect_unix(&path, timeout).await })
        });
        Ok(Client::start(peer, options, connect, prebuilt))
    }

    /// A client for `address`: [`Client::new`] with one destination for an
    /// IP endpoint, [`Client::unix`] for a Unix socket path.
    pub fn for_address(address: Address, options: ClientOptions) -> Result<Client, Error> {
        match address {
            Address::Inet(endpoint) => Client::new(vec![endpoint], options),
            Address::Unix(path) => Client::unix(path, options),
        }
    }
}

async fn connect_unix(path: &Path, timeout: std::time::Duration) -> Result<Link, Error> {
    let failed = |error| Error::UnixConnect {
        path: path.to_path_buf(),
        error: Arc::new(error),
    };
    let stream = match tokio::time::timeout(timeout, sock::connect_unix(path)).await {
        Ok(connected) => connected.map_err(failed)?,
        Err(_) => return Err(failed(std::io::ErrorKind::TimedOut.into())),
    };
    Ok(Link {
        transport: Transport::unix(stream),
        local: UNIX_NO_ADDR,
        remote: UNIX_NO_ADDR,
        leftover: BytesMut::new(),
    })
}
