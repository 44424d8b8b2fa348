//! The node's TOML configuration: parsing, validation, and errors that name
//! the key and the line.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peerwire::{Address, AllowedAddress, Endpoint, NodeId, ScopedIp};
use serde::Deserialize;
use toml::Spanned;

use crate::tls::{RawTls, TlsConfig};

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_id: NodeId,
    pub listen: Vec<Endpoint>,
    /// The `unix:PATH` entries of `listen`: Unix sockets, known by their
    /// credentials, without HELLO (the peer table holds addresses).
    pub listen_unix: Vec<PathBuf>,
    /// The Unix socket files' mode (`unix_mode`, e.g. `0o660`). Default
    /// `0o600`.
    pub unix_mode: u32,
    /// The status listener: loopback only.
    pub admin: Option<Endpoint>,
    pub source_v4: Option<ScopedIp>,
    pub source_v6: Option<ScopedIp>,
    pub peers: Vec<PeerConfig>,
    pub timeouts: Timeouts,
    /// `[tls]`: mutual TLS on every peer link and listener.
    pub tls: Option<TlsConfig>,
}

/// One `[[peer]]`.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub id: NodeId,
    /// Tried by Happy Eyeballs, in this order.
    pub dial: Vec<Endpoint>,
    /// The addresses this peer may connect to us from.
    pub allow: Vec<AllowedAddress>,
    /// The peer's own `source = { v4 = …, v6 = … }`, when it has one: it
    /// replaces `[source]` for this peer, both families at once (see
    /// [`PeerConfig::sources`]).
    pub source: Option<PeerSource>,
}

/// A `[[peer]]`'s own sources, validated as `[source]` is.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSource {
    pub v4: Option<ScopedIp>,
    pub v6: Option<ScopedIp>,
}

impl PeerConfig {
    /// The sources for this peer's link, (v4, v6): the peer's own `source`
    /// table when it has one, in place of `[source]` as a whole (a family
    /// it leaves out has no source for this peer, even if `[source]` has
    /// one), else `[source]`.
    pub fn sources(&self, config: &Config) -> (Option<ScopedIp>, Option<ScopedIp>) {
        match &self.source {
            Some(own) => (own.v4.clone(), own.v6.clone()),
            None => (config.source_v4.clone(), config.source_v6.clone()),
        }
    }
}

/// `[timeouts]`, in seconds in the file.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP connect. Default 5 s.
    pub connect: Duration,
    /// A call's deadline, including the periodic ping. Default 5 s.
    pub call: Duration,
    /// How often each peer is pinged (NULL). Default 2 s.
    pub ping_interval: Duration,
    /// Silence after which a connection is declared dead. Default 10 s.
    pub ping_timeout: Duration,
    /// HELLO, both ways. Default 5 s.
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(5),
            ping_interval: Duration::from_secs(2),
            ping_timeout: Duration::from_secs(10),
            handshake: Duration::from_secs(5),
        }
    }
}

/// A configuration error: where, which key, and what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: Spanned<String>,
    listen: Spanned<Vec<Spanned<String>>>,
    admin: Option<Spanned<String>>,
    unix_mode: Option<Spanned<i64>>,
    #[serde(default)]
    source: RawSource,
    #[serde(default, rename = "peer")]
    peers: Vec<Spanned<RawPeer>>,
    #[serde(default)]
    timeouts: RawTimeouts,
    tls: Option<RawTls>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    v4: Option<Spanned<String>>,
    v6: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: Spanned<String>,
    dial: Spanned<Vec<Spanned<String>>>,
    allow: Spanned<Vec<Spanned<String>>>,
    source: Option<RawSource>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: Option<Spanned<f64>>,
    call: Option<Spanned<f64>>,
    ping_interval: Option<Spanned<f64>>,
    ping_timeout: Option<Spanned<f64>>,
    handshake: Option<Spanned<f64>>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Config::parse(&file, &text, dir)
    }

    /// Parses and validates `text`; `file` names it in errors, and relative
    /// paths in it are taken from `dir`.
    pub fn parse(file: &str, text: &str, dir: &Path) -> Result<Config, ConfigError> {
        let cx = Cx {
            file,
            text,
            dir: dir.to_path_buf(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let message = e
                .message()
                .trim()
                .replace("expected f64", "expected a number of seconds");
            // serde names our structs; the user wrote a table.
            let message = ["RawTls", "RawSource", "RawTimeouts", "RawPeer"]
                .iter()
                .fold(message, |m, raw| {
                    m.replace(&format!("expected struct {raw}"), "expected a table")
                });
            let written = span.clone().and_then(|s| cx.key_at(s));
            let table = span.clone().and_then(|s| cx.table_header_at(s));
            // toml names unknown and missing fields without their table;
            // the line they are on gives it (for a missing field, the
            // table's header line). Inside an inline table
            // (`source = { v5 = … }`) the line's own key is the table's.
            let inline = span.clone().is_some_and(|s| {
                let line_start = cx.text[..s.start].rfind('\n').map_or(0, |at| at + 1);
                cx.text[line_start..s.start].contains('{')
            });
            let key = match (quoted_field(&message), written, table) {
                (Some(field), Some(written), _) if written.ends_with(&field) => Some(written),
                // A key inside an inline table: `source = { v5 = … }`.
                (Some(field), Some(written), _) if inline => Some(format!("{written}.{field}")),
                (Some(field), _, Some(table)) if message.contains("missing field") => {
                    Some(format!("{table}.{field}"))
                }
                (Some(field), _, _) => Some(field),
                (None, written, _) => written,
            };
            ConfigError {
                file: file.to_owned(),
                line: span.map(|s| cx.line_of(s.start)),
                key,
                message,
            }
        })?;
        cx.validate(raw)
    }
}

pub(crate) struct Cx<'a> {
    file: &'a str,
    text: &'a str,
    /// Where relative paths start: the config file's directory.
    pub(crate) dir: PathBuf,
}

impl Cx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].matches('\n').count() + 1
    }

    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: String,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(self.line_of(span.start)),
            key: Some(key.into()),
            message,
        }
    }

    /// The key written on the line of `span`, with its table: `timeouts.call`,
    /// `peer[1].dial`. For errors toml reports without naming the key.
    fn key_at(&self, span: Range<usize>) -> Option<String> {
        let line_no = self.line_of(span.start);
        let mut table = String::new();
        let mut peers = 0usize;
        for (i, line) in self.text.lines().enumerate() {
            let trimmed = line.trim();
            if i + 1 > line_no {
                break;
            }
            if trimmed.starts_with("[[") {
                let name = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
                table = if name == "peer" {
                    peers += 1;
                    format!("peer[{}]", peers - 1)
                } else {
                    name.to_owned()
                };
            } else if trimmed.starts_with('[') {
                let name = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
                // `[peer.source]` belongs to the latest `[[peer]]`.
                table = match name.strip_prefix("peer.") {
                    Some(sub) if peers > 0 => format!("peer[{}].{sub}", peers - 1),
                    _ => name.to_owned(),
                };
            }
            if i + 1 == line_no {
                let key = trimmed.split_once('=')?.0.trim().trim_matches('"');
                return Some(if table.is_empty() {
                    key.to_owned()
                } else {
                    format!("{table}.{key}")
                });
            }
        }
        None
    }

    /// The table whose header (`[tls]`, not `[[peer]]`) is the line of
    /// `span`, if it is one: toml reports a missing field there.
    fn table_header_at(&self, span: Range<usize>) -> Option<String> {
        let line = self.text.lines().nth(self.line_of(span.start) - 1)?.trim();
        let name = line.strip_prefix('[')?.strip_suffix(']')?;
        (!name.starts_with('[')).then(|| name.trim().to_owned())
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let node_id = self.node_id(&raw.node_id, "node_id")?;

        if raw.listen.get_ref().is_empty() {
            return Err(self.error(
                raw.listen.span(),
                "listen",
                "at least one listen address is needed".into(),
            ));
        }
        let mut listen = Vec::new();
        let mut listen_unix = Vec::new();
        for (i, item) in raw.listen.get_ref().iter().enumerate() {
            let key = format!("listen[{i}]");
            if item.get_ref().starts_with(peerwire::addr::UNIX_PREFIX) {
                listen_unix.push(self.unix_path(item, &key)?);
            } else {
                listen.push(self.endpoint(item, &key)?);
            }
        }
        let unix_mode = match &raw.unix_mode {
            None => 0o600,
            Some(mode) => match u32::try_from(*mode.get_ref()) {
                Ok(mode) if mode <= 0o777 => mode,
                _ => {
                    return Err(self.error(
                        mode.span(),
                        "unix_mode",
                        format!(
                            "{} is not a socket file mode: write it in octal, from 0o000 to 0o777 \
                             (e.g. unix_mode = 0o660)",
                            mode.get_ref()
                        ),
                    ));
                }
            },
        };

        let admin = match &raw.admin {
            None => None,
            Some(text) => {
                let admin = self.endpoint(text, "admin")?;
                if !admin.ip().is_loopback() {
                    return Err(self.error(
                        text.span(),
                        "admin",
                        format!(
                            "{admin} is not a loopback address; the status listener has no \
                             authentication, so only 127.0.0.0/8 or ::1 is allowed"
                        ),
                    ));
                }
                Some(admin)
            }
        };

        let source_v4 = self.source(raw.source.v4.as_ref(), "source.v4", true)?;
        let source_v6 = self.source(raw.source.v6.as_ref(), "source.v6", false)?;

        let mut peers: Vec<PeerConfig> = Vec::new();
        for (i, peer) in raw.peers.iter().enumerate() {
            let at = |key: &str| format!("peer[{i}].{key}");
            let peer = peer.get_ref();
            let id = self.node_id(&peer.id, &at("id"))?;
            if id == node_id {
                return Err(self.error(
                    peer.id.span(),
                    at("id"),
                    format!("\"{id}\" is this node's own node_id"),
                ));
            }
            if peers.iter().any(|p| p.id == id) {
                return Err(self.error(
                    peer.id.span(),
                    at("id"),
                    format!("peer \"{id}\" is listed twice"),
                ));
            }
            if peer.dial.get_ref().is_empty() {
                return Err(self.error(
                    peer.dial.span(),
                    at("dial"),
                    "at least one address to dial is needed".into(),
                ));
            }
            let mut dial = Vec::new();
            for (j, item) in peer.dial.get_ref().iter().enumerate() {
                let endpoint = self.endpoint(item, &at(&format!("dial[{j}]")))?;
                if endpoint.port() == 0 {
                    return Err(self.error(
                        item.span(),
                        at(&format!("dial[{j}]")),
                        format!("{:?} has no port", item.get_ref()),
                    ));
                }
                dial.push(endpoint);
            }
            if peer.allow.get_ref().is_empty() {
                return Err(self.error(
                    peer.allow.span(),
                    at("allow"),
                    "at least one allowed address is needed, or the peer can never connect".into(),
                ));
            }
            let mut allow = Vec::new();
            for (j, item) in peer.allow.get_ref().iter().enumerate() {
                let key = at(&format!("allow[{j}]"));
                let entry = item.get_ref().parse::<AllowedAddress>().map_err(|e| {
                    self.error(
                        item.span(),
                        key,
                        format!(
                            "{:?} is not an address or network (e.g. 192.0.2.20/32, \
                             2001:db8::/48, fe80::b%eth0): {e}",
                            item.get_ref()
                        ),
                    )
                })?;
                allow.push(entry);
            }
            let source = match &peer.source {
                None => None,
                Some(own) => Some(PeerSource {
                    v4: self.source(own.v4.as_ref(), &at("source.v4"), true)?,
                    v6: self.source(own.v6.as_ref(), &at("source.v6"), false)?,
                }),
            };
            peers.push(PeerConfig {
                id,
                dial,
                allow,
                source,
            });
        }

        let defaults = Timeouts::default();
        let t = &raw.timeouts;
        let timeouts = Timeouts {
            connect: self.seconds(t.connect.as_ref(), "timeouts.connect", defaults.connect)?,
            call: self.seconds(t.call.as_ref(), "timeouts.call", defaults.call)?,
            ping_interval: self.seconds(
                t.ping_interval.as_ref(),
                "timeouts.ping_interval",
                defaults.ping_interval,
            )?,
            ping_timeout: self.seconds(
                t.ping_timeout.as_ref(),
                "timeouts.ping_timeout",
                defaults.ping_timeout,
            )?,
            handshake: self.seconds(
                t.handshake.as_ref(),
                "timeouts.handshake",
                defaults.handshake,
            )?,
        };

        let tls = match &raw.tls {
            Some(tls) => Some(self.tls(tls, node_id.as_str())?),
            None => None,
        };

        Ok(Config {
            node_id,
            listen,
            listen_unix,
            unix_mode,
            admin,
            source_v4,
            source_v6,
            peers,
            timeouts,
            tls,
        })
    }

    fn node_id(&self, text: &Spanned<String>, key: &str) -> Result<NodeId, ConfigError> {
        text.get_ref()
            .parse::<NodeId>()
            .map_err(|e| self.error(text.span(), key, format!("bad node ID: {e}")))
    }

    fn unix_path(&self, text: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        match text.get_ref().parse::<Address>() {
            // Relative to the config file, as the TLS files are.
            Ok(Address::Unix(path)) => Ok(self.dir.join(path)),
            Ok(Address::Inet(_)) => unreachable!("the text starts with unix:"),
            Err(e) => Err(self.error(
                text.span(),
                key,
                format!(
                    "{:?} is not a Unix socket path (e.g. unix:/run/peerd.socket): {e}",
                    text.get_ref()
                ),
            )),
        }
    }

    fn endpoint(&self, text: &Spanned<String>, key: &str) -> Result<Endpoint, ConfigError> {
        let endpoint = text.get_ref().parse::<Endpoint>().map_err(|e| {
            self.error(
                text.span(),
                key,
                format!(
                    "{:?} is not an IP address and port (e.g. 192.0.2.10:24007, \
                     [2001:db8::10]:24007, [fe80::a%eth0]:24007): {e}",
                    text.get_ref()
                ),
            )
        })?;
        if endpoint.host().is_link_local() && endpoint.host().scope().is_none() {
            return Err(self.error(
                text.span(),
                key,
                format!(
                    "{endpoint} is link-local and needs a scope, e.g. [fe80::a%eth0]:{}",
                    endpoint.port()
                ),
            ));
        }
        Ok(endpoint)
    }

    fn source(
        &self,
        text: Option<&Spanned<String>>,
        key: &str,
        v4: bool,
    ) -> Result<Option<ScopedIp>, ConfigError> {
        let Some(text) = text else { return Ok(None) };
        let ip = text.get_ref().parse::<ScopedIp>().map_err(|e| {
            self.error(
                text.span(),
                key,
                format!("{:?} is not an IP address: {e}", text.get_ref()),
            )
        })?;
        let family_ok = matches!(
            (ip.ip(), v4),
            (IpAddr::V4(_), true) | (IpAddr::V6(_), false)
        );
        if !family_ok {
            let want = if v4 { "an IPv4" } else { "an IPv6" };
            return Err(self.error(text.span(), key, format!("{ip} is not {want} address")));
        }
        if ip.is_link_local() && ip.scope().is_none() {
            return Err(self.error(
                text.span(),
                key,
                format!("{ip} is link-local and needs a scope: write {ip}%IFNAME or {ip}%INDEX"),
            ));
        }
        Ok(Some(ip))
    }

    fn seconds(
        &self,
        value: Option<&Spanned<f64>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let secs = *value.get_ref();
        // Below a millisecond a timer rounds to nothing (a ping loop of
        // 1e-10 s logged 600 lines a second); above a day it is a typo.
        if !(secs.is_finite() && (MIN_SECONDS..=MAX_SECONDS).contains(&secs)) {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "{secs} is not a number of seconds from {MIN_SECONDS} (1 ms) to {MAX_SECONDS} (a day)"
                ),
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

/// The shortest timeout accepted, in seconds: 1 ms.
const MIN_SECONDS: f64 = 0.001;

/// The longest timeout accepted, in seconds: a day.
const MAX_SECONDS: f64 = 86_400.0;

/// The field a serde message names in backquotes: "unknown field `x`",
/// "missing field `x`".
fn quoted_field(message: &str) -> Option<String> {
    for prefix in ["unknown field `", "missing field `", "duplicate key `"] {
        if let Some(rest) = message.find(prefix).map(|at| &message[at + prefix.len()..]) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}
