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
//!   certificate carries no zone), checked during the TLS handshake by a
//!   verifier made for the connection, so that a refusal reaches the
//!   client as the fatal alert `access_denied`; with an identity, the node
//!   ID claimed in HELLO equals the certificate's subject CN (GlusterFS's
//!   convention), refused as an RPC `AUTH_ERROR`; and the peer table
//!   allows that address for that ID;
//! - **client**: the server certificate names the IP we dialled (IP SAN),
//!   or, with [`ServerCheck::Cn`], carries the expected CN; with an
//!   identity, the node ID in the HELLO answer equals the CN. When the
//!   server refuses us with a fatal alert (during the handshake, or, with
//!   TLS 1.3, as the first thing read on the connection, before any
//!   reply), the error names the alert ([`TlsAlert`]): [`TlsError::Refused`]
//!   when connecting, [`crate::DisconnectCause::TlsRefused`] for a call
//!   without HELLO, which the server did not run. Only an alert that judges
//!   a handshake (our certificate, its signature, our `Finished`) is read
//!   as a refusal; any other fatal alert (`bad_record_mac`, say) may come
//!   after the server ran calls, and ends the connection as
//!   [`crate::DisconnectCause::TlsAlert`], its written calls counted sent.
//!   Replies that arrived before an alert are delivered first.

use std::fmt;
use std::net::IpAddr;

mod error;
mod rules;

pub use error::{CertError, HandshakeFailure, TlsAlert, TlsConfigError, TlsError, TlsPart};
pub(crate) use error::{Cn, Ips, Refusal};
pub use rules::{check_address, check_client_certificate, check_cn, check_server_certificate};

#[cfg(feature = "tls")]
mod certificate;
#[cfg(feature = "tls")]
mod config;
#[cfg(feature = "tls")]
pub(crate) mod handshake;
#[cfg(feature = "tls")]
mod identity;
#[cfg(feature = "tls")]
mod revocation;
#[cfg(feature = "tls")]
mod rustls_error;
#[cfg(feature = "tls")]
mod stream;

#[cfg(feature = "tls")]
pub(crate) use config::{ClientShared, ServerShared, client_config, server_config};
#[cfg(feature = "tls")]
pub use config::{ClientTls, ServerCheck, ServerTls, TlsMode};
#[cfg(feature = "tls")]
pub(crate) use rustls_error::io_failure;
/// Without the `tls` feature a client's TLS settings cannot be made: this
/// type has no values, so [`crate::ClientOptions::tls`] is always `None`.
/// The field is there in every build, so that a crate that names it
/// compiles whatever features another crate in the same build turns on.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub enum ClientTls {}

/// Without the `tls` feature a server's TLS settings cannot be made (see
/// [`ClientTls`]): [`crate::ServerOptions::tls`] is always `None`.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub enum ServerTls {}

#[cfg(feature = "tls")]
pub use identity::TlsIdentity;
#[cfg(feature = "tls")]
pub use revocation::RevocationList;
#[cfg(feature = "tls")]
pub(crate) use revocation::{Presented, Revocation};

/// rustls on ring, and nothing else.
#[cfg(feature = "tls")]
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A TLS protocol version, as [`TlsPeer::version`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
    /// Not known (facts made outside a session).
    #[default]
    Unknown,
}

impl fmt::Display for TlsVersion {
    /// `TLSv1.3`, `TLSv1.2` or `unknown`, as OpenSSL names the versions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
            TlsVersion::Unknown => "unknown",
        })
    }
}

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
    /// The protocol version of the session it was presented on.
    pub version: TlsVersion,
    /// The certificate's serial number, in upper-case hex without
    /// separators or leading zeros, as `openssl x509 -serial` prints it:
    /// what a CRL lists.
    pub serial: String,
    /// The end of the certificate's validity (`notAfter`), when it is
    /// after the Unix epoch.
    pub not_after: Option<std::time::SystemTime>,
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

/// The fatal alert a TLS stream's I/O error reports having received from
/// the peer (rustls returns it as an `io::Error` wrapping
/// `rustls::Error::AlertReceived`).
pub(crate) fn received_alert(error: &std::io::Error) -> Option<TlsAlert> {
    #[cfg(feature = "tls")]
    {
        match error.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::AlertReceived(alert) => Some(TlsAlert::from_code(u8::from(*alert))),
            _ => None,
        }
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = error;
        None
    }
}
