//! The status a node reports, the admin RPC program that serves it, and how
//! it is printed.
//!
//! The admin program is peerwire itself, defined in admin.x: program
//! [`admin::PEERD_ADMIN`] version 1, procedure [`admin::ADMIN_STATUS`]
//! takes no arguments and answers the status JSON as an XDR `string<>`.
//! Its listener is loopback only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use peerwire::proto::xdr::XdrString;
use peerwire::{
    Admission, CallContext, Client, ClientOptions, ConnectOptions, Endpoint, ProcError,
    RunningServer, Server, ServerOptions,
};
use serde::{Deserialize, Serialize};

use admin::{AdminV1Client, AdminV1Program, AdminV1Server, StatusJson};

/// peerd's admin program, as peerwire::xdrgen generates it from admin.x.
#[allow(dead_code)]
pub mod admin {
    include!("admin.rs");
}

/// A node's view, as `peerd status --json` prints it. Stable: see peerd's README (examples/peerd/README.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub node_id: String,
    pub listen: Vec<String>,
    pub peers: Vec<PeerStatus>,
    pub inbound: Vec<InboundStatus>,
    /// 1 at start, one more for each config reload applied (SIGHUP).
    #[serde(default)]
    pub config_generation: u64,
    /// When the running config was loaded, in ms since the Unix epoch.
    #[serde(default)]
    pub config_loaded_ms: u64,
    /// With `[tls]`: when our own certificate expires (`notAfter`), in ms
    /// since the Unix epoch.
    #[serde(default)]
    pub tls_not_after_ms: Option<u64>,
    /// What the operator should act on, such as our certificate expiring
    /// within `tls.expiry_warning_days`. Empty when all is well.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One configured peer, as this node's client to it sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: String,
    /// "starting", "connected", "connecting", "backoff", "circuit_open" or
    /// "rejected".
    pub state: String,
    pub remote: Option<String>,
    pub local: Option<String>,
    pub observed_by_peer: Option<String>,
    pub rtt_us: Option<u64>,
    pub last_error: Option<String>,
    /// The TLS session of the link: null for plain TCP (and while not
    /// connected), or the peer's certificate CN and the TLS version.
    #[serde(default)]
    pub tls: Option<TlsStatus>,
}

/// What a TLS session showed of the peer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TlsStatus {
    /// The peer certificate's subject CN (null if it has none).
    pub cn: Option<String>,
    /// "TLSv1.3" or "TLSv1.2".
    pub version: String,
    /// The peer certificate's serial number (upper-case hex).
    #[serde(default)]
    pub serial: String,
    /// When the peer's certificate expires (`notAfter`), in ms since the
    /// Unix epoch.
    #[serde(default)]
    pub not_after_ms: Option<u64>,
}

impl From<&peerwire::tls::TlsPeer> for TlsStatus {
    fn from(peer: &peerwire::tls::TlsPeer) -> TlsStatus {
        TlsStatus {
            cn: peer.cn.clone(),
            version: peer.version.to_string(),
            serial: peer.serial.clone(),
            not_after_ms: peer.not_after.map(|t| crate::tls::unix_secs(t) * 1000),
        }
    }
}

impl std::fmt::Display for TlsStatus {
    /// `TLSv1.3 CN node-b` (the CN escaped: it is the peer's text).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cn {
            Some(cn) => write!(f, "{} CN {}", self.version, cn.escape_debug()),
            None => write!(f, "{} (no CN)", self.version),
        }
    }
}

/// Whether any link or verdict of `statuses` ran TLS: then the tables
/// get a `tls` column (plain TCP nodes print as before).
pub fn any_tls(statuses: &[&Status]) -> bool {
    statuses.iter().any(|s| {
        s.peers.iter().any(|p| p.tls.is_some()) || s.inbound.iter().any(|v| v.tls.is_some())
    })
}

fn tls_cell(tls: &Option<TlsStatus>) -> String {
    tls.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

impl PeerStatus {
    /// A configured peer whose link does not exist yet.
    pub fn starting(id: &str) -> PeerStatus {
        PeerStatus {
            id: id.to_owned(),
            state: "starting".into(),
            remote: None,
            local: None,
            observed_by_peer: None,
            rtt_us: None,
            last_error: None,
            tls: None,
        }
    }
}

/// One inbound connection's verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InboundStatus {
    pub observed: String,
    pub peer: Option<String>,
    /// "accepted" or "rejected".
    pub verdict: String,
    pub reason: Option<String>,
    /// Connections this entry stands for (repeats from one address, for
    /// one node ID and reason, are one entry).
    #[serde(default = "one")]
    pub count: u64,
    /// When the first and the latest of them were decided, in
    /// milliseconds since the Unix epoch.
    #[serde(default)]
    pub first_ms: u64,
    #[serde(default)]
    pub last_ms: u64,
    /// The TLS session the verdict was given on: null for plain TCP (or a
    /// refusal before TLS finished), else the peer certificate's CN and
    /// the TLS version.
    #[serde(default)]
    pub tls: Option<TlsStatus>,
    /// On a Unix socket (`observed` is then `"unix"`): the peer process's
    /// credentials, the latest connection's pid. `null` on TCP.
    #[serde(default)]
    pub credentials: Option<CredentialsStatus>,
}

/// A Unix socket peer's credentials (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialsStatus {
    pub uid: u32,
    pub gid: u32,
    /// `null` when the kernel did not give it (another PID namespace).
    pub pid: Option<i32>,
}

impl From<peerwire::PeerCredentials> for CredentialsStatus {
    fn from(c: peerwire::PeerCredentials) -> CredentialsStatus {
        CredentialsStatus {
            uid: c.uid,
            gid: c.gid,
            pid: c.pid,
        }
    }
}

impl std::fmt::Display for CredentialsStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} gid {}", self.uid, self.gid)?;
        match self.pid {
            Some(pid) => write!(f, " pid {pid}"),
            None => Ok(()),
        }
    }
}

fn one() -> u64 {
    1
}

/// Writes an address as the config does: `192.0.2.10:24007`,
/// `[2001:db8::1]:24007`, `[fe80::a%eth0]:24007`. A link-local scope is
/// written as this host's interface name where it has one, else as the
/// index.
pub fn fmt_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()).to_string(),
            None if v6.scope_id() != 0 => {
                let scope = nix::net::if_::if_indextoname(v6.scope_id())
                    .ok()
                    .and_then(|name| name.into_string().ok())
                    .unwrap_or_else(|| v6.scope_id().to_string());
                format!("[{}%{scope}]:{}", v6.ip(), v6.port())
            }
            None => format!("[{}]:{}", v6.ip(), v6.port()),
        },
    }
}

/// An address another host reported (its scope id is an interface index
/// of *that* host, so it is written as a number).
pub fn fmt_foreign_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => {
            format!("[{}%{}]:{}", v6.ip(), v6.scope_id(), v6.port())
        }
        other => fmt_addr(other),
    }
}

/// The admin program's handlers: the status of the node, from `F`.
struct Admin<F>(F);

impl<F> AdminV1Server for Admin<F>
where
    F: Fn() -> Status + Send + Sync + 'static,
{
    async fn status(&self, _ctx: &CallContext) -> Result<StatusJson, ProcError> {
        let json = serde_json::to_string(&(self.0)()).map_err(|_| ProcError::SystemErr)?;
        Ok(StatusJson(XdrString::from(json)))
    }
}

/// Serves `status()` as JSON on `admin` (loopback only; admission refuses
/// anything else before reading a byte).
pub fn serve_admin<F>(admin: &Endpoint, status: F) -> Result<RunningServer, peerwire::Error>
where
    F: Fn() -> Status + Send + Sync + 'static,
{
    let options = ServerOptions {
        admission: Admission {
            reject: Vec::new(),
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        },
        ..ServerOptions::default()
    };
    Server::new(options)
        .program(AdminV1Program(Admin(status)))
        .serve(std::slice::from_ref(admin))
}

/// Asks the node whose admin listener is `admin` for its status.
pub async fn fetch(admin: &Endpoint, timeout: Duration) -> Result<Status, String> {
    let options = ClientOptions {
        connect: ConnectOptions {
            connect_timeout: timeout,
            ..ConnectOptions::default()
        },
        deadline: timeout,
        breaker_threshold: 1,
        ..ClientOptions::default()
    };
    let client = Client::new(vec![admin.clone()], options).expect("a destination");
    let result = AdminV1Client::new(client.clone()).status().await;
    let cause = client.last_connect_error();
    client.close();
    let StatusJson(json) = result.map_err(|e| match cause {
        Some(cause) => format!("{e} ({cause})"),
        None => e.to_string(),
    })?;
    let json = json
        .to_str()
        .map_err(|_| format!("the status from {admin} is not UTF-8"))?;
    serde_json::from_str(json).map_err(|e| format!("the status from {admin} did not parse: {e}"))
}

/// Prints rows as columns, the first row being the header.
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// "85 µs", "1.2 ms", "-".
pub fn fmt_rtt(rtt_us: Option<u64>) -> String {
    match rtt_us {
        None => "-".into(),
        Some(us) if us < 1000 => format!("{us} µs"),
        Some(us) => format!("{:.1} ms", us as f64 / 1000.0),
    }
}

fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// The peer rows of a status table (with the node's ID in the first
/// column), with a last `tls` column when `tls`.
pub fn peer_rows_with(status: &Status, tls: bool) -> Vec<Vec<String>> {
    status
        .peers
        .iter()
        .map(|p| {
            let mut row = vec![
                status.node_id.clone(),
                p.id.clone(),
                or_dash(&p.local),
                or_dash(&p.remote),
                or_dash(&p.observed_by_peer),
                p.state.clone(),
                fmt_rtt(p.rtt_us),
            ];
            if tls {
                row.push(tls_cell(&p.tls));
            }
            row
        })
        .collect()
}

/// The header of [`peer_rows`].
pub fn peer_header() -> Vec<String> {
    [
        "node",
        "peer",
        "local source",
        "remote",
        "observed by peer",
        "state",
        "rtt",
    ]
    .map(String::from)
    .to_vec()
}

/// [`peer_header`], with a last `tls` column when `tls` (see [`peer_rows_with`]).
pub fn peer_header_with(tls: bool) -> Vec<String> {
    let mut header = peer_header();
    if tls {
        header.push("tls".into());
    }
    header
}

/// `peerd status` without `--json`.
pub fn print_human(status: &Status) {
    println!(
        "node {}, listening on {}; config generation {}",
        status.node_id,
        status.listen.join(", "),
        status.config_generation
    );
    for warning in &status.warnings {
        println!("warning: {warning}");
    }
    println!();
    let tls = any_tls(&[status]);
    let mut rows = vec![peer_header_with(tls)];
    rows.extend(peer_rows_with(status, tls));
    print_table(&rows);
    for p in &status.peers {
        if let Some(error) = &p.last_error {
            println!("  {}: {error}", p.id);
        }
    }
    println!();
    println!("inbound (newest first):");
    let mut header = ["observed", "peer", "verdict", "times"]
        .map(String::from)
        .to_vec();
    if tls {
        header.push("tls".into());
    }
    header.push("reason".into());
    let mut rows = vec![header];
    for v in &status.inbound {
        let observed = match &v.credentials {
            Some(credentials) => format!("{} ({credentials})", v.observed),
            None => v.observed.clone(),
        };
        let mut row = vec![
            observed,
            or_dash(&v.peer),
            v.verdict.clone(),
            v.count.to_string(),
        ];
        if tls {
            row.push(tls_cell(&v.tls));
        }
        row.push(or_dash(&v.reason));
        rows.push(row);
    }
    print_table(&rows);
}
