//! One running node: its server (with identity), a client per peer that
//! pings it, and the status listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use peerwire::peer::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION};
use peerwire::{
    Address, Admission, CallOptions, Client, ClientIdentity, ClientOptions, ConnectOptions,
    ConnectionState, Endpoint, Error, IdentityMode, ListenOptions, PeerTable, RunningServer,
    Server, ServerIdentity, ServerOptions, Sources,
};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{Config, PeerConfig};
use crate::status::{self, CredentialsStatus, InboundStatus, PeerStatus, Status, TlsStatus};
use crate::tls::TlsConfig;

/// The window over which a node's first connection attempts to its peers
/// are spread (see `ClientOptions::first_connect_spread`).
const FIRST_CONNECT_SPREAD: Duration = Duration::from_millis(200);

/// What the last ping of a peer found.
#[derive(Clone, Debug, Default)]
struct Report {
    rtt: Option<Duration>,
    last_error: Option<String>,
    /// The peer refused our identity, or is not who we expected, or saw
    /// another source than ours.
    rejected: bool,
    /// Pings answered since the last failure.
    answered: u64,
}

/// What a peer's link is made from: a link whose settings did not change
/// is kept across a reload (with its connection).
#[derive(Clone, Debug, PartialEq)]
struct LinkSettings {
    node: String,
    peer: String,
    dial: Vec<Endpoint>,
    sources: (Option<String>, Option<String>),
    timeouts: [Duration; 5],
}

impl LinkSettings {
    fn of(config: &Config, peer: &PeerConfig) -> LinkSettings {
        let t = config.timeouts;
        // The sources this peer's link uses: its own `source`, or `[source]`.
        let (v4, v6) = peer.sources(config);
        LinkSettings {
            node: config.node_id.to_string(),
            peer: peer.id.to_string(),
            dial: peer.dial.clone(),
            // Only the sources of the families it dials: a change of the
            // other family's source leaves the link alone.
            sources: (
                v4.filter(|_| peer.dial.iter().any(|e| e.ip().is_ipv4()))
                    .map(|ip| ip.to_string()),
                v6.filter(|_| peer.dial.iter().any(|e| e.ip().is_ipv6()))
                    .map(|ip| ip.to_string()),
            ),
            timeouts: [
                t.connect,
                t.call,
                t.ping_interval,
                t.ping_timeout,
                t.handshake,
            ],
        }
    }
}

/// Our side of one peer.
struct PeerLink {
    id: String,
    settings: LinkSettings,
    client: Client,
    report: Mutex<Report>,
    pinger: Mutex<Option<JoinHandle<()>>>,
}

impl PeerLink {
    fn status(&self) -> PeerStatus {
        let report = self.report.lock().unwrap().clone();
        let (state, local, remote) = match self.client.state() {
            ConnectionState::Connected { local, remote } => {
                ("connected", Some(local), Some(remote))
            }
            ConnectionState::Backoff { .. } => ("backoff", None, None),
            ConnectionState::Open { .. } => ("circuit_open", None, None),
            ConnectionState::Connecting | ConnectionState::Idle | ConnectionState::Closed => {
                ("connecting", None, None)
            }
        };
        let state = if report.rejected && local.is_none() {
            "rejected"
        } else {
            state
        };
        let observed = local
            .and(self.client.hello())
            .map(|hello| status::fmt_foreign_addr(hello.observed));
        PeerStatus {
            id: self.id.clone(),
            state: state.into(),
            remote: remote.map(status::fmt_addr),
            local: local.map(status::fmt_addr),
            observed_by_peer: observed,
            rtt_us: report
                .rtt
                .filter(|_| local.is_some())
                .map(|rtt| rtt.as_micros() as u64),
            last_error: report.last_error,
            tls: local
                .and(self.client.tls_peer())
                .map(|peer| TlsStatus::from(&*peer)),
        }
    }
}

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

/// Every `listen` entry: the IP endpoints in config order (so
/// `local_addrs` lines up with them), then the Unix paths.
fn all_listen(config: &Config) -> Vec<Address> {
    let inet = config.listen.iter().cloned().map(Address::from);
    let unix = config
        .listen_unix
        .iter()
        .map(|path| Address::Unix(path.clone()));
    inet.chain(unix).collect()
}

/// Opens the Unix listeners a reload added and closes those it removed.
/// The mode of the new ones is the one the server started with.
fn reload_unix(
    server: &mut RunningServer,
    running: &Mutex<Vec<std::path::PathBuf>>,
    wanted: &[std::path::PathBuf],
) -> Result<(), String> {
    let mut running = running.lock().unwrap();
    let added: Vec<Address> = wanted
        .iter()
        .filter(|p| !running.contains(p))
        .map(|p| Address::Unix(p.clone()))
        .collect();
    server.listen_also_on(&added).map_err(|e| e.to_string())?;
    for path in running.iter() {
        if !wanted.contains(path) {
            server.stop_listening_unix(path);
            info!(listen = %format!("unix:{}", path.display()), "stopped listening");
        }
    }
    *running = wanted.to_vec();
    Ok(())
}

/// The node's identity and peer table.
fn server_identity(config: &Config) -> ServerIdentity {
    let mut table = PeerTable::new();
    for peer in &config.peers {
        table = table.allow(peer.id.clone(), peer.allow.iter().cloned());
    }
    ServerIdentity {
        node: config.node_id.clone(),
        cluster: None,
        peers: table,
        mode: IdentityMode::Strict,
    }
}

/// Only addresses some peer's `allow` list covers are admitted; any other
/// connection is refused at accept, before a byte is read. (No peers: no
/// one is admitted.)
fn admission(config: &Config) -> Admission {
    let allow: Vec<IpNet> = config
        .peers
        .iter()
        .flat_map(|peer| peer.allow.iter().map(|entry| entry.net()))
        .collect();
    if allow.is_empty() {
        return Admission {
            reject: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            allow,
        };
    }
    Admission {
        reject: Vec::new(),
        allow,
    }
}

/// A `[::]:PORT` listen entry is one dual-stack socket (IPv4 callers too,
/// judged and shown as IPv4), unless `0.0.0.0:PORT` is also listed: then
/// `[::]` is IPv6-only and the IPv4 socket takes IPv4.
fn dual_stack(listen: &[Endpoint]) -> bool {
    let unspecified_v4_ports: Vec<u16> = listen
        .iter()
        .filter(|e| e.ip() == std::net::IpAddr::from([0, 0, 0, 0]))
        .map(Endpoint::port)
        .collect();
    let unspecified_v6 = |e: &&Endpoint| e.ip() == std::net::IpAddr::from([0u16; 8]);
    listen.iter().any(|e| unspecified_v6(&e))
        && !listen
            .iter()
            .filter(unspecified_v6)
            .any(|e| unspecified_v4_ports.contains(&e.port()))
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
            Some(tls) => Some(
                tls.server()
                    .map_err(|(which, text)| Error::Config(format!("{}: {text}", which.name())))?,
            ),
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

    /// Applies a new config to the running node, changing only what
    /// changed: peers whose link settings (ID, dial list, our sources and
    /// timeouts) are the same keep their link and its connection; added
    /// peers are dialled; removed ones closed; the allow lists (the peer
    /// table and admission) take effect at once, closing inbound
    /// connections no longer allowed; `listen` entries added are opened and
    /// those removed closed (the connections they accepted go on), the
    /// others untouched; a changed `[tls]` `cert`, `key`, `ca` or `crl`
    /// (already checked when the config was loaded: every file parses, the
    /// key fits the certificate, its CN is `node_id`, each CRL is signed by
    /// a CA in `ca`) is taken by the listener and every link: new
    /// handshakes use it, live connections go on, except those whose peer
    /// a new CRL revokes. A change of `node_id` or `admin`, of the TLS
    /// mode, or adding or removing `[tls]`, needs a restart: such a config
    /// is refused, and the running one stays. Returns a one-line summary.
    pub fn reload(&mut self, new: &Config) -> Result<String, String> {
        let Some(old) = self.config.clone() else {
            return Err("the node has not dialled its peers yet".into());
        };
        if new.node_id != old.node_id || new.admin != old.admin {
            return Err(
                "node_id and admin cannot change while running; restart peerd to change them"
                    .into(),
            );
        }
        let renewed = match (&old.tls, &new.tls) {
            (old_tls, new_tls) if old_tls == new_tls => None,
            (Some(old_tls), Some(new_tls)) if old_tls.mode == new_tls.mode => {
                let named = |(which, text): (crate::tls::TlsKey, String)| {
                    format!("{}: {text}", which.name())
                };
                let server = new_tls.server().map_err(named)?;
                let client = new_tls.client().map_err(named)?;
                Some((server, client))
            }
            _ => {
                return Err(
                    "[tls] was added or removed, or its mode changed: that cannot change while \
                     running; restart peerd to apply it (a changed cert, key, ca or crl is \
                     applied live)"
                        .into(),
                );
            }
        };
        if new.unix_mode != old.unix_mode {
            return Err("unix_mode cannot change while running; restart peerd to change it".into());
        }
        let admission = admission(new);
        if let Err(net) = admission.check() {
            return Err(format!("admission network {net} has no IPv4 form"));
        }
        {
            let mut guard = self.shared.server.lock().unwrap();
            let Some(server) = guard.as_mut() else {
                return Err("the node is shutting down".into());
            };
            // TLS first: a refusal changes nothing.
            if let Some((tls, _)) = &renewed {
                server.update_tls(tls.clone()).map_err(|e| e.to_string())?;
                info!(
                    serial = %tls.identity.serial(),
                    crls = tls.identity.crls().len(),
                    "TLS material renewed: new handshakes use it"
                );
                let own = new
                    .tls
                    .as_ref()
                    .and_then(|config| OwnCert::of(&tls.identity, config));
                if let Some(warning) = own.as_ref().and_then(OwnCert::warning) {
                    warn!(node = %new.node_id, "{warning}");
                }
                *self.shared.own_cert.lock().unwrap() = own;
            }
            // Listeners: open the new ones first (a failure changes
            // nothing), then apply the policy, then close the old ones.
            let mut listen = self.shared.listen.lock().unwrap();
            let added: Vec<Endpoint> = new
                .listen
                .iter()
                .filter(|e| !listen.iter().any(|(old, _)| old == *e))
                .cloned()
                .collect();
            let bound = server.listen_also(&added).map_err(|e| e.to_string())?;
            listen.extend(added.into_iter().zip(bound));
            server
                .update(admission, Some(server_identity(new)))
                .map_err(|e| e.to_string())?;
            for (endpoint, bound) in listen.iter() {
                if !new.listen.contains(endpoint) {
                    server.stop_listening(*bound);
                    info!(listen = %status::fmt_addr(*bound), "stopped listening");
                }
            }
            listen.retain(|(endpoint, _)| new.listen.contains(endpoint));
            listen.sort_by_key(|(endpoint, _)| new.listen.iter().position(|e| e == endpoint));
            drop(listen);
            reload_unix(server, &self.shared.listen_unix, &new.listen_unix)?;
        }
        let mut peers = self.shared.peers.lock().unwrap();
        let current = peers.take().unwrap_or_default();
        let (mut kept, mut added) = (0, 0);
        let mut links = Vec::new();
        for peer in &new.peers {
            let settings = LinkSettings::of(new, peer);
            match current.iter().find(|l| l.settings == settings) {
                Some(link) => {
                    kept += 1;
                    if let Some((_, tls)) = &renewed
                        && let Err(error) = link.client.update_tls(tls.clone())
                    {
                        warn!(peer = %link.id, %error, "link kept its TLS material");
                    }
                    links.push(link.clone());
                }
                None => {
                    added += 1;
                    links.push(PeerLink::start(new, peer));
                }
            }
        }
        let mut removed = 0;
        for link in &current {
            if !links.iter().any(|l| Arc::ptr_eq(l, link)) {
                removed += 1;
                link.stop();
            }
        }
        *peers = Some(links);
        drop(peers);
        self.config = Some(new.clone());
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared
            .loaded_ms
            .store(unix_ms(std::time::SystemTime::now()), Ordering::Relaxed);
        let tls = match &renewed {
            Some((tls, _)) => format!(
                "; TLS renewed (certificate serial {}, {} CRLs)",
                tls.identity.serial(),
                tls.identity.crls().len()
            ),
            None => String::new(),
        };
        Ok(format!(
            "config generation {generation}: {kept} peers kept, {added} added or changed, {removed} removed{tls}"
        ))
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

impl PeerLink {
    /// Makes the link and starts pinging.
    fn start(config: &Config, peer: &PeerConfig) -> Arc<PeerLink> {
        let link = Arc::new(PeerLink::new(config, peer));
        let pinger = tokio::spawn(ping_loop(link.clone(), config.timeouts.ping_interval));
        *link.pinger.lock().unwrap() = Some(pinger);
        link
    }

    /// Stops pinging and closes the connection.
    fn stop(&self) {
        if let Some(pinger) = self.pinger.lock().unwrap().take() {
            pinger.abort();
        }
        self.client.close();
    }

    fn new(config: &Config, peer: &PeerConfig) -> PeerLink {
        let tls = config.tls.as_ref().map(|tls| {
            TlsConfig::client(tls).expect("[tls] was checked when the node started listening")
        });
        let mut sources = Sources::new();
        let (v4, v6) = peer.sources(config);
        if let Some(v4) = v4 {
            sources = sources.with(v4);
        }
        if let Some(v6) = v6 {
            sources = sources.with(v6);
        }
        let t = config.timeouts;
        let mut identity = ClientIdentity::new(config.node_id.clone(), peer.id.clone());
        identity.timeout = t.handshake;
        let options = ClientOptions {
            connect: ConnectOptions {
                sources,
                connect_timeout: t.connect,
                ..ConnectOptions::default()
            },
            deadline: t.call,
            ping_interval: t.ping_interval,
            ping_timeout: t.ping_timeout,
            backoff_base: Duration::from_millis(100),
            backoff_max: (t.ping_interval * 4).max(Duration::from_secs(1)),
            // A node dials all its peers at start: spread the first
            // attempts over a fifth of a second rather than one burst.
            first_connect_spread: FIRST_CONNECT_SPREAD,
            identity: Some(identity),
            tls,
            ..ClientOptions::default()
        };
        let dial: Vec<Endpoint> = peer.dial.clone();
        PeerLink {
            id: peer.id.to_string(),
            settings: LinkSettings::of(config, peer),
            client: Client::new(dial, options).expect("a destination"),
            report: Mutex::new(Report::default()),
            pinger: Mutex::new(None),
        }
    }
}

/// True for the errors that say the peer is not who we think, or does not
/// accept who we are: waiting will not change them.
fn is_identity(error: &Error) -> bool {
    matches!(
        error,
        Error::IdentityRefused { .. } | Error::WrongPeer { .. } | Error::ObservedMismatch { .. }
    ) || matches!(
        error,
        Error::Tls { error, .. } if matches!(
            **error,
            peerwire::tls::TlsError::Certificate(_) | peerwire::tls::TlsError::Refused { .. }
        )
    )
}

/// Pings `peer` (a NULL call to the handshake program) every `interval`,
/// timing it, for as long as the node runs. The calls also keep the
/// connection up and make the client reconnect after a loss.
async fn ping_loop(peer: Arc<PeerLink>, interval: Duration) {
    let options = CallOptions::default();
    loop {
        let start = Instant::now();
        let result = peer
            .client
            .call_with(
                HANDSHAKE_PROGRAM,
                HANDSHAKE_VERSION,
                0,
                Default::default(),
                &options,
            )
            .await;
        let rtt = start.elapsed();
        let cause = peer.client.last_connect_error();
        record(&peer, result.map(drop), rtt, cause);
        tokio::time::sleep(interval.saturating_sub(start.elapsed())).await;
    }
}

/// Writes one ping's outcome into the peer's report.
fn record(peer: &PeerLink, result: Result<(), Error>, rtt: Duration, cause: Option<Arc<Error>>) {
    let mut report = peer.report.lock().unwrap();
    {
        match result {
            Ok(_) => {
                if report.last_error.is_some() {
                    info!(peer = %peer.id, "peer answers again");
                }
                report.rtt = Some(rtt);
                report.last_error = None;
                report.rejected = false;
                report.answered += 1;
                debug!(peer = %peer.id, ?rtt, "ping");
            }
            Err(error) => {
                let rejected = is_identity(&error) || cause.as_deref().is_some_and(is_identity);
                let text = match &cause {
                    Some(cause) if !is_identity(&error) => {
                        format!("{error}; last connect: {cause}")
                    }
                    _ => error.to_string(),
                };
                if report.last_error.as_deref() != Some(text.as_str()) {
                    warn!(peer = %peer.id, error = %text, "ping failed");
                }
                report.rtt = None;
                report.last_error = Some(text);
                report.rejected = rejected;
                report.answered = 0;
            }
        }
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
