//! peerd's TLS settings: the config's `[tls]` table and the `--cert`,
//! `--key`, `--ca`, `--server-cn` and `--starttls` flags of `ping` and
//! `gluster-dump`.
//!
//! ```toml
//! [tls]
//! cert = "node-a.pem"     # this node's certificate; its CN must be node_id
//! key = "node-a.key"
//! ca = "cluster-ca.pem"   # the CAs whose certificates peers must present
//! crl = ["revoked.pem"]   # optional: revocation lists of those CAs (PEM or
//!                         # DER; one file name or a list)
//! mode = "direct"         # or "starttls" (RFC 9289); default "direct"
//! expiry_warning_days = 14 # warn this long before our certificate expires
//! ```
//!
//! Paths are relative to the config file. Each file is read once, when
//! the config is loaded, and what was read is what the node uses, so a
//! file that changes afterwards changes nothing until the next load. A
//! SIGHUP loads them again: a changed `cert`, `key`, `ca` or `crl` is
//! applied without a restart (new handshakes use it; live links go on,
//! except those whose peer a new CRL revokes).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml::Spanned;

use peerwire::tls::{
    ClientTls, RevocationList, ServerCheck, ServerTls, TlsError, TlsIdentity, TlsPart,
};

use crate::config::{ConfigError, Cx};

/// How TLS starts on a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte, as GlusterFS does.
    #[default]
    Direct,
    /// A plain connection upgraded by the RPC-with-TLS probe (RFC 9289).
    StartTls,
}

impl TlsMode {
    /// As written in the config: `direct`, `starttls`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Direct => "direct",
            TlsMode::StartTls => "starttls",
        }
    }
}

/// A validated `[tls]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    pub cert: PemFile,
    pub key: PemFile,
    pub ca: PemFile,
    /// Revocation lists (PEM or DER; the `pem` field holds the bytes).
    pub crl: Vec<PemFile>,
    pub mode: TlsMode,
    /// How long before our certificate expires the node warns (log and
    /// status): `tls.expiry_warning_days`, default 14.
    pub expiry_warning: Duration,
}

/// The default of `tls.expiry_warning_days`.
pub const EXPIRY_WARNING_DAYS: u32 = 14;

/// What a node says of its own certificate's expiry, if anything: once
/// it is within `window` of its `notAfter` (or past it).
pub fn expiry_warning(
    not_after: SystemTime,
    window: Duration,
    now: SystemTime,
    file: &str,
) -> Option<String> {
    const DAY: u64 = 86_400;
    match not_after.duration_since(now) {
        Ok(left) if left <= window => Some(format!(
            "our certificate {file} expires in {} day(s), at {} s after the Unix epoch: \
             renew it",
            left.as_secs() / DAY,
            unix_secs(not_after)
        )),
        Ok(_) => None,
        Err(past) => Some(format!(
            "our certificate {file} expired {} day(s) ago: peers refuse it; renew it",
            past.duration().as_secs() / DAY
        )),
    }
}

/// `tls.expiry_warning_days` unset.
pub fn default_expiry_warning() -> Duration {
    Duration::from_secs(u64::from(EXPIRY_WARNING_DAYS) * 86_400)
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A PEM file's contents and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// The file it was read from; `None` for material made in memory
    /// (`peerd demo --tls`).
    pub path: Option<PathBuf>,
    pub pem: Arc<[u8]>,
}

impl PemFile {
    /// Material made in memory.
    pub fn in_memory(pem: &str) -> PemFile {
        PemFile {
            path: None,
            pem: pem.as_bytes().into(),
        }
    }

    /// Where it came from, for messages.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "(in memory)".into(),
        }
    }
}

/// Never prints the contents: a key file is a secret.
impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PemFile({}, {} bytes)", self.origin(), self.pem.len())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    ca: Spanned<String>,
    crl: Option<Spanned<OneOrMany>>,
    mode: Option<Spanned<String>>,
    expiry_warning_days: Option<Spanned<i64>>,
}

/// A file name, or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// What a file must hold.
#[derive(Clone, Copy)]
enum Holds {
    Certificate,
    PrivateKey,
}

/// Which `[tls]` key a problem with the material belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsKey {
    Cert,
    Key,
    Ca,
    Crl,
}

/// A problem with the TLS material: the `[tls]` key at fault, the crate's
/// error, and its text with peerd's file names in place of the crate's
/// `certificate PEM`, `key PEM`, ... (peerd reads the files itself).
#[derive(Debug)]
pub struct TlsFault {
    pub which: TlsKey,
    pub error: peerwire::tls::TlsError,
    pub text: String,
}

impl TlsKey {
    /// The key of a part of the material.
    fn of(part: Option<TlsPart>) -> TlsKey {
        match part {
            Some(TlsPart::Key) => TlsKey::Key,
            Some(TlsPart::Ca) => TlsKey::Ca,
            Some(TlsPart::Crl) => TlsKey::Crl,
            _ => TlsKey::Cert,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsKey::Cert => "tls.cert",
            TlsKey::Key => "tls.key",
            TlsKey::Ca => "tls.ca",
            TlsKey::Crl => "tls.crl",
        }
    }
}

impl From<TlsMode> for peerwire::tls::TlsMode {
    fn from(mode: TlsMode) -> peerwire::tls::TlsMode {
        match mode {
            TlsMode::Direct => peerwire::tls::TlsMode::Direct,
            TlsMode::StartTls => peerwire::tls::TlsMode::StartTls,
        }
    }
}

/// Builds the crate's identity from PEM material. The error says which of
/// the three is at fault (a key that does not fit its certificate is the
/// key's fault) and names the files.
fn identity_of(cert: &PemFile, key: &PemFile, ca: &PemFile) -> Result<TlsIdentity, TlsFault> {
    TlsIdentity::from_pem(&cert.pem, &key.pem, &ca.pem).map_err(|error| {
        let which = match &error {
            TlsError::Config(config) => TlsKey::of(config.part()),
            _ => TlsKey::Cert,
        };
        let text = config_text(&error)
            .replace("certificate PEM", &cert.origin())
            .replace("key PEM", &key.origin())
            .replace("CA PEM", &ca.origin());
        TlsFault { which, error, text }
    })
}

/// A material error's text, without the crate's `TLS configuration: `
/// before it (peerd's messages say which key it is).
fn config_text(error: &TlsError) -> String {
    match error {
        TlsError::Config(config) => config.to_string(),
        other => other.to_string(),
    }
}

/// The revocation lists in `file` (PEM or DER), named by the file.
fn crl_lists(file: &PemFile) -> Result<Vec<RevocationList>, TlsFault> {
    let text = String::from_utf8_lossy(&file.pem);
    let lists = if text.trim_start().starts_with("-----BEGIN") {
        RevocationList::from_pem(&file.pem)
    } else {
        RevocationList::from_der(&file.pem).map(|list| vec![list])
    };
    lists.map_err(|error| TlsFault {
        which: TlsKey::Crl,
        text: config_text(&error)
            .replace("CRL PEM", &file.origin())
            .replace("CRL DER", &file.origin()),
        error,
    })
}

impl TlsConfig {
    /// This node's TLS identity (certificate, key, CA roots, CRLs).
    pub fn identity(&self) -> Result<TlsIdentity, TlsFault> {
        let identity = identity_of(&self.cert, &self.key, &self.ca)?;
        if self.crl.is_empty() {
            return Ok(identity);
        }
        let mut lists = Vec::new();
        for file in &self.crl {
            lists.extend(crl_lists(file)?);
        }
        // The list's source is "CRL PEM"/"CRL DER" (and its place in its
        // file): name the file instead.
        let sources: Vec<String> = self.crl.iter().map(PemFile::origin).collect();
        identity.with_crls(lists).map_err(|error| {
            let text = config_text(&error);
            let text = if sources.len() == 1 {
                text.replace("CRL PEM", &sources[0])
                    .replace("CRL DER", &sources[0])
            } else {
                format!("one of {}: {text}", sources.join(", "))
            };
            TlsFault {
                which: TlsKey::Crl,
                error,
                text,
            }
        })
    }

    /// The listener side: a client certificate is always required.
    pub fn server(&self) -> Result<ServerTls, TlsFault> {
        Ok(ServerTls {
            identity: self.identity()?,
            mode: self.mode.into(),
        })
    }

    /// A peer link: the peer's certificate must name the dialled IP.
    pub fn client(&self) -> Result<ClientTls, TlsFault> {
        Ok(ClientTls {
            identity: self.identity()?,
            mode: self.mode.into(),
            server: ServerCheck::DialledIp,
        })
    }
}

impl ProbeTls {
    /// The client side of `ping` / `gluster-dump`: the server's certificate
    /// must name the dialled IP, or carry `--server-cn`.
    pub fn client(&self) -> Result<ClientTls, String> {
        let identity = identity_of(&self.cert, &self.key, &self.ca).map_err(|fault| {
            let flag = match fault.which {
                TlsKey::Cert => "--cert",
                TlsKey::Key => "--key",
                TlsKey::Ca | TlsKey::Crl => "--ca",
            };
            format!("{flag}: {}", fault.text)
        })?;
        Ok(ClientTls {
            identity,
            mode: self.mode.into(),
            server: match &self.server_cn {
                Some(cn) => ServerCheck::Cn(cn.clone()),
                None => ServerCheck::DialledIp,
            },
        })
    }
}

impl Cx<'_> {
    /// Validates `[tls]`: every file readable and holding PEM of its kind,
    /// the key fitting the certificate, the certificate's CN equal to
    /// `node_id`, and a known mode.
    pub(crate) fn tls(&self, raw: &RawTls, node_id: &str) -> Result<TlsConfig, ConfigError> {
        let cert = self.pem_file(&raw.cert, "tls.cert", Holds::Certificate)?;
        let key = self.pem_file(&raw.key, "tls.key", Holds::PrivateKey)?;
        let ca = self.pem_file(&raw.ca, "tls.ca", Holds::Certificate)?;
        let crl = match &raw.crl {
            None => Vec::new(),
            Some(files) => {
                let names = match files.get_ref() {
                    OneOrMany::One(name) => vec![name.clone()],
                    OneOrMany::Many(names) => names.clone(),
                };
                let mut read = Vec::new();
                for name in names {
                    if name.is_empty() {
                        return Err(self.error(
                            files.span(),
                            "tls.crl",
                            "a file name is needed".into(),
                        ));
                    }
                    let path = self.dir.join(&name);
                    let bytes = std::fs::read(&path).map_err(|e| {
                        self.error(
                            files.span(),
                            "tls.crl",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    read.push(PemFile {
                        path: Some(path),
                        pem: bytes.into(),
                    });
                }
                read
            }
        };
        let mode = match &raw.mode {
            None => TlsMode::Direct,
            Some(mode) => match mode.get_ref().as_str() {
                "direct" => TlsMode::Direct,
                "starttls" => TlsMode::StartTls,
                other => {
                    return Err(self.error(
                        mode.span(),
                        "tls.mode",
                        format!(
                            "{other:?} is not a TLS mode: write \"direct\" (TLS from the first \
                             byte, as GlusterFS does) or \"starttls\" (RFC 9289)"
                        ),
                    ));
                }
            },
        };
        let days = match &raw.expiry_warning_days {
            None => i64::from(EXPIRY_WARNING_DAYS),
            Some(days) => match *days.get_ref() {
                d @ 0..=3650 => d,
                other => {
                    return Err(self.error(
                        days.span(),
                        "tls.expiry_warning_days",
                        format!("{other} is not a number of days from 0 to 3650"),
                    ));
                }
            },
        };
        let config = TlsConfig {
            cert,
            key,
            ca,
            crl,
            mode,
            expiry_warning: Duration::from_secs(days.unsigned_abs() * 86_400),
        };
        let identity = config.identity().map_err(|TlsFault { which, text, .. }| {
            let span = match which {
                TlsKey::Cert => raw.cert.span(),
                TlsKey::Key => raw.key.span(),
                TlsKey::Ca => raw.ca.span(),
                TlsKey::Crl => raw.crl.as_ref().map_or(raw.ca.span(), Spanned::span),
            };
            self.error(span, which.name(), text)
        })?;
        if identity.cn() != Some(node_id) {
            let cn = match identity.cn() {
                Some(cn) => format!("{:?}", cn),
                None => "no CN".into(),
            };
            return Err(self.error(
                raw.cert.span(),
                TlsKey::Cert.name(),
                format!(
                    "{} has {cn}, but node_id is {node_id:?}: peers check that the node ID \
                     this node claims is its certificate's CN",
                    config.cert.origin()
                ),
            ));
        }
        Ok(config)
    }

    fn pem_file(
        &self,
        text: &Spanned<String>,
        key: &str,
        holds: Holds,
    ) -> Result<PemFile, ConfigError> {
        let written = text.get_ref();
        if written.is_empty() {
            return Err(self.error(text.span(), key, "a file name is needed".into()));
        }
        let path = self.dir.join(written);
        let pem = read_pem(&path, holds).map_err(|e| self.error(text.span(), key, e))?;
        Ok(PemFile {
            path: Some(path),
            pem: pem.into(),
        })
    }
}

/// Reads `path` and checks it holds PEM of the right kind. The error says
/// which file and what is wrong with it.
fn read_pem(path: &Path, holds: Holds) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&pem);
    let ok = match holds {
        Holds::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
        // PKCS #8, PKCS #1 (RSA) or SEC 1 (EC).
        Holds::PrivateKey => text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----"),
    };
    if ok {
        Ok(pem)
    } else {
        let wanted = match holds {
            Holds::Certificate => "PEM certificate (-----BEGIN CERTIFICATE-----)",
            Holds::PrivateKey => "PEM private key (-----BEGIN PRIVATE KEY-----)",
        };
        Err(format!("{} holds no {wanted}", path.display()))
    }
}

/// The TLS flags of `peerd ping` and `peerd gluster-dump`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Our certificate (PEM): with it, the call goes over mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cert", "ca"])]
    pub key: Option<PathBuf>,
    /// The CAs the server's certificate must chain to (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cert", "key"])]
    pub ca: Option<PathBuf>,
    /// Accept the server's certificate by this subject CN instead of an IP
    /// SAN naming the dialled address (glusterd's certificates usually
    /// carry only a CN).
    #[arg(long, value_name = "NAME", requires = "cert")]
    pub server_cn: Option<String>,
    /// Start TLS with the RFC 9289 probe on a plain connection, instead of
    /// from the first byte.
    #[arg(long, requires = "cert")]
    pub starttls: bool,
}

/// The TLS a probe (`ping`, `gluster-dump`) asked for, read from its files.
#[derive(Clone, Debug)]
pub struct ProbeTls {
    pub cert: PemFile,
    pub key: PemFile,
    pub ca: PemFile,
    pub server_cn: Option<String>,
    pub mode: TlsMode,
}

impl TlsArgs {
    /// Reads the files; `None` without `--cert`. The error names the flag
    /// and the file.
    pub fn load(&self) -> Result<Option<ProbeTls>, String> {
        let (Some(cert), Some(key), Some(ca)) = (&self.cert, &self.key, &self.ca) else {
            return Ok(None);
        };
        let read = |flag: &str, path: &Path, holds| {
            read_pem(path, holds)
                .map(|pem| PemFile {
                    path: Some(path.to_owned()),
                    pem: pem.into(),
                })
                .map_err(|e| format!("--{flag}: {e}"))
        };
        if self.server_cn.as_deref() == Some("") {
            return Err("--server-cn: an empty name matches no certificate".into());
        }
        Ok(Some(ProbeTls {
            cert: read("cert", cert, Holds::Certificate)?,
            key: read("key", key, Holds::PrivateKey)?,
            ca: read("ca", ca, Holds::Certificate)?,
            server_cn: self.server_cn.clone(),
            mode: if self.starttls {
                TlsMode::StartTls
            } else {
                TlsMode::Direct
            },
        }))
    }
}
