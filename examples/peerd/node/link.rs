//! Our side of one peer: its client, the ping loop that keeps the
//! connection up and times it, and what the last ping found.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerwire::peer::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION};
use peerwire::{
    CallOptions, Client, ClientIdentity, ClientOptions, ConnectOptions, ConnectionState, Endpoint,
    Error, Sources,
};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{Config, PeerConfig};
use crate::status::{self, PeerStatus, TlsStatus};
use crate::tls::TlsConfig;

/// The window over which a node's first connection attempts to its peers
/// are spread (see `ClientOptions::first_connect_spread`).
const FIRST_CONNECT_SPREAD: Duration = Duration::from_millis(200);

/// What the last ping of a peer found.
#[derive(Clone, Debug, Default)]
pub(super) struct Report {
    rtt: Option<Duration>,
    last_error: Option<String>,
    /// The peer refused our identity, or is not who we expected, or saw
    /// another source than ours.
    rejected: bool,
    /// Pings answered since the last failure.
    pub(super) answered: u64,
}

/// What a peer's link is made from: a link whose settings did not change
/// is kept across a reload (with its connection).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LinkSettings {
    node: String,
    peer: String,
    dial: Vec<Endpoint>,
    sources: (Option<String>, Option<String>),
    timeouts: [Duration; 5],
}

impl LinkSettings {
    pub(super) fn of(config: &Config, peer: &PeerConfig) -> LinkSettings {
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
pub(super) struct PeerLink {
    pub(super) id: String,
    pub(super) settings: LinkSettings,
    pub(super) client: Client,
    pub(super) report: Mutex<Report>,
    pinger: Mutex<Option<JoinHandle<()>>>,
}

impl PeerLink {
    pub(super) fn status(&self) -> PeerStatus {
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

impl PeerLink {
    /// Makes the link and starts pinging.
    pub(super) fn start(config: &Config, peer: &PeerConfig) -> Arc<PeerLink> {
        let link = Arc::new(PeerLink::new(config, peer));
        let pinger = tokio::spawn(ping_loop(link.clone(), config.timeouts.ping_interval));
        *link.pinger.lock().unwrap() = Some(pinger);
        link
    }

    /// Stops pinging and closes the connection.
    pub(super) fn stop(&self) {
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
