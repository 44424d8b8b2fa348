//! [`Server`]: services registered, then served: the options checked,
//! the listeners bound, and the accept loops started.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::warn;

use super::program::Handler;
use super::running::SharedHandle;
use super::stats::Counters;
use super::{Policy, Program, RunningServer, ServerOptions, Service, Shared};
use crate::addr::Endpoint;
use crate::conn::Registry;
use crate::error::{ConfigError, Error};
use crate::listen::{ListenOptions, listen};
use crate::peer::ServerIdentity;

/// Registers services, then [`Server::serve`]s them.
///
/// ```
/// use bytes::Bytes;
/// use peerwire::{Client, ClientOptions, Endpoint, ProcError, Server, ServerOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peerwire::Error> {
/// let server = Server::new(ServerOptions::default())
///     .service(0x2000_0001, 1, |_ctx, procedure, args: Bytes| async move {
///         match procedure {
///             1 => Ok(args),
///             _ => Err(ProcError::ProcUnavail),
///         }
///     })
///     .serve(&["127.0.0.1:0".parse()?])?; // port 0: the port chosen is in local_addrs()
/// let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
/// assert_eq!(&client.call(0x2000_0001, 1, 1, Bytes::from_static(b"hi")).await?[..], b"hi");
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Server {
    pub(super) registry: Registry,
    pub(super) services: HashMap<(u32, u32), Handler>,
    pub(super) options: ServerOptions,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("registry", &self.registry)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Server {
        Server::new(ServerOptions::default())
    }
}

impl Server {
    /// A server with these options and no services.
    pub fn new(options: ServerOptions) -> Server {
        Server {
            registry: Registry::new(),
            services: HashMap::new(),
            options,
        }
    }

    /// Serves `service` as `program` version `version`.
    pub fn service(self, program: u32, version: u32, service: impl Service) -> Server {
        self.handler(program, version, Handler::Service(Arc::new(service)))
    }

    fn handler(mut self, program: u32, version: u32, handler: Handler) -> Server {
        self.registry.add(program, version);
        self.services.insert((program, version), handler);
        self
    }

    /// Serves a typed [`Program`] as its program number and version
    /// ([`Program::PROGRAM`], [`Program::VERSION`]): decode failures of
    /// its arguments answer GARBAGE_ARGS, unknown procedures PROC_UNAVAIL.
    /// Registering the same program and version again replaces it.
    pub fn program<P: Program>(self, program: P) -> Server {
        self.handler(P::PROGRAM, P::VERSION, Handler::program(program))
    }

    /// Listens on each address and serves. Must be called inside a tokio
    /// runtime. Port 0 picks a free port; see [`RunningServer::local_addrs`].
    pub fn serve(self, addresses: &[Endpoint]) -> Result<RunningServer, Error> {
        let before_hello = self.options.max_record_before_hello;
        if !(ServerOptions::MIN_RECORD_BEFORE_HELLO..=crate::proto::MAX_RECORD_CEILING)
            .contains(&before_hello)
        {
            return Err(ConfigError::RecordBeforeHello {
                bytes: before_hello,
                min: ServerOptions::MIN_RECORD_BEFORE_HELLO,
            }
            .into());
        }
        if let Err(net) = self.options.admission.check() {
            return Err(ConfigError::MappedNetwork { net }.into());
        }
        #[cfg(feature = "tls")]
        let tls = match &self.options.tls {
            Some(tls) => Some(Arc::new(
                crate::tls::server_config(tls).map_err(Error::from)?,
            )),
            None => None,
        };
        #[cfg(feature = "tls")]
        let tls_on = tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls_on = false;
        let listeners = bind_all(addresses, &self.options.listen)?;
        let identity = self.options.identity.clone().map(resolve_identity);
        let policy = Policy {
            admission: self.options.admission.clone(),
            identity,
            unix_admission: self.options.unix_admission.clone(),
            #[cfg(feature = "tls")]
            tls,
        };
        let shared = Arc::new(Shared {
            registry: self.registry,
            services: self.services.into_iter().collect(),
            counters: Counters::default(),
            options: self.options,
            policy: watch::Sender::new(Arc::new(policy)),
            connections: std::sync::Mutex::new(HashMap::new()),
            verdicts: std::sync::Mutex::new(std::collections::VecDeque::new()),
            next_id: AtomicU64::new(rand::random::<u64>() >> 16),
            tls_on,
        });
        let (shutdown, _) = watch::channel(false);
        let mut running = RunningServer {
            local_addrs: Vec::new(),
            closers: Vec::new(),
            shutdown: Arc::new(shutdown),
            slots: Arc::new(Semaphore::new(shared.options.max_connections)),
            shared: Arc::new(SharedHandle(shared)),
            tasks: Vec::new(),
            unix_closers: Vec::new(),
        };
        running.spawn_accept_loops(listeners);
        Ok(running)
    }
}

/// Binds every address. `dual_stack` is for `[::]` listeners; the others
/// take the rest of the options as they are.
pub(super) fn bind_all(
    addresses: &[Endpoint],
    options: &ListenOptions,
) -> Result<Vec<(TcpListener, SocketAddr)>, Error> {
    let mut listeners = Vec::new();
    for address in addresses {
        let unspecified_v6 = address.ip() == std::net::IpAddr::from([0u16; 8]);
        let options = ListenOptions {
            dual_stack: options.dual_stack && unspecified_v6,
            ..options.clone()
        };
        let listener = listen(address, &options)?;
        let local = listener.local_addr().map_err(|error| Error::Listen {
            address: address.clone(),
            error: Arc::new(error),
        })?;
        listeners.push((listener, local));
    }
    Ok(listeners)
}

/// Resolves the interface names of a peer table's scoped entries.
pub(super) fn resolve_identity(mut identity: ServerIdentity) -> Arc<ServerIdentity> {
    let missing = identity
        .peers
        .resolve_scopes(|name| crate::sock::interface_index(name).ok());
    for name in missing {
        warn!(interface = %name, "peer table names an interface this host lacks; its entries match nothing");
    }
    Arc::new(identity)
}
