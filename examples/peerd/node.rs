//! One running node: its server (with identity), a client per peer that
//! pings it, and the status listener.
//!
//! The node's listener is made from the config in `inbound`, each peer's
//! link and ping loop live in `link`, and `reload` applies a new config to
//! the running node.

mod inbound;
mod link;
mod reload;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use peerwire::{Endpoint, Error, ListenOptions, RunningServer, Server, ServerOptions};
use tracing::{info, warn};

use crate::config::Config;
use crate::status::{self, CredentialsStatus, InboundStatus, PeerStatus, Status, TlsStatus};
use crate::tls::TlsConfig;

use inbound::{admission, all_listen, dual_stack, server_identity};
use link::PeerLink;

struct Shared {
    node_id: String,
    /// Each `listen` entry of the config, with the address it is bound to.
    listen: Mutex<Vec<(Endpoint, SocketAddr)>>,
    /// The `unix:PATH` entries of `listen`.
    listen_unix: Mutex<Vec<std::path::PathBuf>>,
    server: Mutex<Option<RunningServer>>,
    /// The configured peers' IDs, in config order: listed as `starting`
    /// until [`Node::dial`] makes their links, so that the very first
    /// status answer lists every peer.
    configured: Vec<String>,
    /// Set by [`Node::dial`], changed by [`Node::reload`].
    peers: Mutex<Option<Vec<Arc<PeerLink>>>>,
    /// The config's generation: 1 at start, one more for each reload.
    generation: AtomicU64,
    /// When the running config was loaded, in ms since the Unix epoch.
    loaded_ms: AtomicU64,
    /// With `[tls]`: our certificate's `notAfter`, its file, and how long
    /// before it the node warns; replaced when a reload renews it.
    own_cert: Mutex<Option<OwnCert>>,
}

/// Our own certificate's expiry, as far as the node warns of it.
struct OwnCert {
    not_after: SystemTime,
    file: String,
    window: Duration,
}

impl OwnCert {
    /// `identity`, built from `tls` (not parsed again here).
    fn of(identity: &peerwire::tls::TlsIdentity, tls: &TlsConfig) -> Option<OwnCert> {
        Some(OwnCert {
            not_after: identity.not_after()?,
            file: tls.cert.origin(),
            window: tls.expiry_warning,
        })
    }

    /// The warning to give now, if any.
    fn warning(&self) -> Option<String> {
        crate::tls::expiry_warning(self.not_after, self.window, SystemTime::now(), &self.file)
    }
}

/// How often a node checks its own certificate's expiry (and logs the
/// warning while it holds).
const EXPIRY_CHECK: Duration = Duration::from_secs(3600);

impl Shared {
    fn peers(&self) -> Vec<Arc<PeerLink>> {
        self.peers.lock().unwrap().clone().unwrap_or_default()
    }
}

impl Shared {
    fn status(&self) -> Status {
        let inbound = match &*self.server.lock().unwrap() {
            Some(server) => server
                .verdicts()
                .into_iter()
                .map(|v| InboundStatus {
                    observed: match v.credentials {
                        Some(_) => "unix".into(),
                        None => status::fmt_addr(v.observed),
                    },
                    credentials: v.credentials.map(CredentialsStatus::from),
                    peer: v.peer.map(|p| p.to_string()),
                    verdict: if v.accepted { "accepted" } else { "rejected" }.into(),
                    reason: v.reason.map(|r| r.to_string()),
                    count: v.count,
                    first_ms: unix_ms(v.first),
                    last_ms: unix_ms(v.at),
                    tls: v.tls.as_deref().map(TlsStatus::from),
                })
                .collect(),
            None => Vec::new(),
        };
        // One look under the lock (a second in the same statement would
        // wait for the first).
        let (tls_not_after_ms, warnings) = {
            let own = self.own_cert.lock().unwrap();
            (
                own.as_ref()
                    .map(|own| crate::tls::unix_secs(own.not_after) * 1000),
                own.iter().filter_map(OwnCert::warning).collect(),
            )
        };
        Status {
            node_id: self.node_id.clone(),
            listen: self
                .listen
                .lock()
                .unwrap()
                .iter()
                .map(|(_, bound)| status::fmt_addr(*bound))
                .chain(
                    self.listen_unix
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|path| format!("unix:{}", path.display())),
                )
                .collect(),
            peers: match &*self.peers.lock().unwrap() {
                Some(peers) => peers.iter().map(|p| p.status()).collect(),
                None => self
                    .configured
                    .iter()
                    .map(|id| PeerStatus::starting(id))
                    .collect(),
            },
            inbound,
            config_generation: self.generation.load(Ordering::Relaxed),
            config_loaded_ms: self.loaded_ms.load(Ordering::Relaxed),
            tls_not_after_ms,
            warnings,
        }
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A running node. [`Node::shutdown`] stops it.
pub struct Node {
    shared: Arc<Shared>,
    admin: Option<RunningServer>,
    admin_addr: Option<SocketAddr>,
    /// The running config, once the node has dialled.
    config: Option<Config>,
}

/// Errors starting a node: a listener that cannot bind, say.
pub type StartError = Error;

impl Node {
    /// Starts the node: its listeners, then its peers.
    pub fn start(config: &Config) -> Result<Node, StartError> {
        let mut node = Node::listen(config)?;
        node.dial(config);
        Ok(node)
    }

    /// Starts the node's listener (with the peer table of `config`) and its
    /// admin listener, without dialling anyone yet.
    pub fn listen(config: &Config) -> Result<Node, StartError> {
        let tls = match &config.tls {
            Some(tls) => Some(tls.server().map_err(|fault| Error::from(fault.error))?),
            None => None,
        };
        let own_cert = tls
            .as_ref()
            .zip(config.tls.as_ref())
            .and_then(|(server, tls)| OwnCert::of(&server.identity, tls));
        let options = ServerOptions {
            tls,
            identity: Some(server_identity(config)),
            admission: admission(config),
            listen: ListenOptions {
                dual_stack: dual_stack(&config.listen),
                unix_mode: config.unix_mode,
                ..ListenOptions::default()
            },
            handshake_timeout: config.timeouts.handshake,
            shutdown_grace: Duration::from_secs(2),
            ..ServerOptions::default()
        };
        let server = Server::new(options).serve_on(&all_listen(config))?;
        let listen: Vec<(Endpoint, SocketAddr)> = config
            .listen
            .iter()
            .cloned()
            .zip(server.local_addrs().iter().copied())
            .collect();
        for (_, addr) in &listen {
            info!(node = %config.node_id, listen = %status::fmt_addr(*addr), "listening");
        }
        for path in &config.listen_unix {
            info!(node = %config.node_id, listen = %format!("unix:{}", path.display()), "listening");
        }
        let shared = Arc::new(Shared {
            node_id: config.node_id.to_string(),
            listen: Mutex::new(listen),
            listen_unix: Mutex::new(config.listen_unix.clone()),
            server: Mutex::new(Some(server)),
            configured: config.peers.iter().map(|p| p.id.to_string()).collect(),
            peers: Mutex::new(None),
            generation: AtomicU64::new(1),
            loaded_ms: AtomicU64::new(unix_ms(std::time::SystemTime::now())),
            own_cert: Mutex::new(own_cert),
        });
        if shared.own_cert.lock().unwrap().is_some() {
            // Warned at once, then hourly while it holds: a node that runs
            // for months without a reload still says so in its log.
            let watched = Arc::downgrade(&shared);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(EXPIRY_CHECK);
                loop {
                    tick.tick().await;
                    let Some(shared) = watched.upgrade() else {
                        return;
                    };
                    let warning = shared
                        .own_cert
                        .lock()
                        .unwrap()
                        .as_ref()
                        .and_then(OwnCert::warning);
                    if let Some(warning) = warning {
                        warn!(node = %shared.node_id, "{warning}");
                    }
                }
            });
        }
        let (admin, admin_addr) = match &config.admin {
            Some(admin) => {
                let status_of = shared.clone();
                let running = status::serve_admin(admin, move || status_of.status())?;
                let addr = running.local_addrs()[0];
                info!(admin = %status::fmt_addr(addr), "status listener");
                (Some(running), Some(addr))
            }
            None => (None, None),
        };
        Ok(Node {
            shared,
            admin,
            admin_addr,
            config: None,
        })
    }

    /// Makes a client for each peer of `config` and starts pinging it.
    /// Only the first call counts.
    pub fn dial(&mut self, config: &Config) {
        let mut peers = self.shared.peers.lock().unwrap();
        if peers.is_some() {
            return;
        }
        let links = config
            .peers
            .iter()
            .map(|peer| PeerLink::start(config, peer))
            .collect();
        *peers = Some(links);
        self.config = Some(config.clone());
    }

    /// The addresses listened on, with the ports chosen.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        let listen = self.shared.listen.lock().unwrap();
        listen.iter().map(|(_, bound)| *bound).collect()
    }

    /// The status listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The node's view now (what the admin listener serves).
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Stops pinging, closes every client, then shuts the listeners down.
    pub async fn shutdown(self) {
        for peer in self.shared.peers() {
            peer.stop();
        }
        if let Some(admin) = self.admin {
            admin.shutdown().await;
        }
        let server = self.shared.server.lock().unwrap().take();
        if let Some(server) = server {
            server.shutdown().await;
        }
        info!(node = %self.shared.node_id, "stopped");
    }
}

/// How many pings of each peer were answered in a row (for the demo's wait).
pub fn answered(node: &Node) -> Vec<(String, u64)> {
    node.shared
        .peers()
        .iter()
        .map(|p| (p.id.clone(), p.report.lock().unwrap().answered))
        .collect()
}
