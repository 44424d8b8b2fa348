//! Mutual TLS: what a peer's certificate says, the rules it must meet, and
//! (with the `tls` feature) the configuration of both sides.
//!
//! Two ways to run TLS under the same record marking and RPC:
//!
//! - [`TlsMode::Direct`] (the default): TLS from the first byte, as
//!   GlusterFS does on its management port;
//! - [`TlsMode::StartTls`]: RPC-with-TLS (RFC 9289). The client sends a
//!   NULL call whose credential flavor is `AUTH_TLS` (7) with an empty
//!   body; a server that supports it answers `MSG_ACCEPTED` with an
//!   `AUTH_NONE` verifier whose body is the 8 bytes `STARTTLS`, and both
//!   run the TLS handshake on the same connection.
//!
//! The chain is verified by rustls (webpki) against the configured roots;
//! the rules about *who* the certificate names are ours, in plain
//! functions ([`check_address`], [`check_cn`], [`check_client_certificate`],
//! [`check_server_certificate`]) that take the certificate's facts
//! ([`TlsPeer`]) and the address and ID to compare, and return a matchable
//! [`CertError`]:
//!
//! - **server**: the client certificate names the *observed* source IP as
//!   an IP SAN (an IPv4-mapped address is compared as IPv4; a link-local
//!   SAN matches by IP, its scope is judged by the peer table, since a
//!   certificate carries no zone); with an identity, the node ID claimed
//!   in HELLO equals the certificate's subject CN (GlusterFS's
//!   convention); and the peer table allows that address for that ID;
//! - **client**: the server certificate names the IP we dialled (IP SAN),
//!   or, with [`ServerCheck::Cn`], carries the expected CN; with an
//!   identity, the node ID in the HELLO answer equals the CN.

use std::fmt;
use std::net::IpAddr;

mod rules;

pub use rules::{check_address, check_client_certificate, check_cn, check_server_certificate};

#[cfg(feature = "tls")]
mod config;
#[cfg(feature = "tls")]
pub(crate) mod handshake;
#[cfg(feature = "tls")]
mod identity;

#[cfg(feature = "tls")]
pub use config::{ClientTls, ServerCheck, ServerTls, TlsMode};
#[cfg(feature = "tls")]
pub(crate) use config::{client_config, server_config};
#[cfg(feature = "tls")]
pub use identity::TlsIdentity;

/// A peer's end-entity certificate, as far as the rules need it, and the
/// TLS session it was presented on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TlsPeer {
    /// The subject's common name (CN), if it has one.
    pub cn: Option<String>,
    /// The IP address SANs, in canonical form (IPv4-mapped as IPv4).
    pub ip_sans: Vec<IpAddr>,
    /// The DNS name SANs (shown, never used by the rules).
    pub dns_sans: Vec<String>,
    /// The protocol version: `TLSv1.3` or `TLSv1.2`.
    pub version: String,
}

impl fmt::Display for TlsPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CN {}, IP SANs {}, DNS SANs [{}], {}",
            Cn(&self.cn),
            Ips(&self.ip_sans),
            self.dns_sans
                .iter()
                .map(|name| name.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.version
        )
    }
}

/// Why a certificate was not accepted. Each message names what the
/// certificate says and what it was compared with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The certificate (or one in its chain) has expired.
    #[error("certificate expired")]
    Expired,
    /// The certificate (or one in its chain) is not valid yet.
    #[error("certificate not valid yet")]
    NotYetValid,
    /// The chain does not lead to a configured root (another CA).
    #[error("certificate issued by an unknown CA (not in the configured roots)")]
    UnknownIssuer,
    /// The client presented no certificate; this server requires one.
    #[error("the client presented no certificate (a client certificate is required)")]
    NoClientCertificate,
    /// The certificate has no IP address SAN, so it cannot name an address.
    #[error("certificate with CN {} has no IP address SAN", Cn(cn))]
    NoIpSan {
        /// The certificate's CN.
        cn: Option<String>,
    },
    /// The certificate's IP SANs do not include the address.
    #[error(
        "certificate with CN {} names IP SANs {} but the address is {observed}",
        Cn(cn),
        Ips(sans)
    )]
    IpMismatch {
        /// The address observed (server) or dialled (client), canonical.
        observed: IpAddr,
        /// The certificate's IP SANs.
        sans: Vec<IpAddr>,
        /// The certificate's CN.
        cn: Option<String>,
    },
    /// The certificate's CN is not the expected one (the node ID claimed in
    /// HELLO, the node ID answered, or the configured server CN).
    #[error("certificate CN {} is not {}", Cn(cn), expected.escape_debug())]
    CnMismatch {
        /// What the CN had to be.
        expected: String,
        /// The certificate's CN.
        cn: Option<String>,
    },
    /// Anything else rustls or the certificate parser refused.
    #[error("certificate refused: {0}")]
    Other(String),
}

/// Why a TLS connection failed on the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate broke a rule, or the server refused ours.
    #[error("{0}")]
    Certificate(#[source] CertError),
    /// The TLS handshake failed (protocol error, alert, reset).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// The server did not answer the RFC 9289 `AUTH_TLS` probe with
    /// `STARTTLS`: it does not offer TLS. Nothing else was sent in plain
    /// text.
    #[error(
        "the server did not answer the AUTH_TLS probe with STARTTLS (no RPC-with-TLS); nothing else was sent in plain text"
    )]
    StartTlsRefused,
    /// The probe or the handshake did not finish in time.
    #[error("no TLS handshake within {0:?}")]
    Timeout(std::time::Duration),
    /// Our own TLS configuration is unusable.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A CN for messages: quoted and escaped (it is peer-supplied text), or
/// "none".
pub(crate) struct Cn<'a>(pub(crate) &'a Option<String>);

impl fmt::Display for Cn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(cn) => write!(f, "\"{}\"", cn.escape_debug()),
            None => f.write_str("(none)"),
        }
    }
}

struct Ips<'a>(&'a [IpAddr]);

impl fmt::Display for Ips<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, ip) in self.0.iter().enumerate() {
            write!(f, "{}{ip}", if i == 0 { "" } else { ", " })?;
        }
        f.write_str("]")
    }
}
