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

mod rules;

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
mod stream;

#[cfg(feature = "tls")]
pub(crate) use config::{ClientShared, ServerShared, client_config, server_config};
#[cfg(feature = "tls")]
pub use config::{ClientTls, ServerCheck, ServerTls, TlsMode};
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
    /// A certificate revocation list of the certificate's CA lists it (or
    /// one in its chain): its key must be taken as stolen. Refused at the
    /// handshake; a live connection that presented it is closed when the
    /// lists are updated to revoke it.
    #[error(
        "certificate with CN {} and serial {serial} is revoked: a CRL of its CA lists it (the peer needs a new certificate)",
        Cn(cn)
    )]
    Revoked {
        /// The certificate's serial number, as [`TlsPeer::serial`] shows it.
        serial: String,
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
    /// The server's certificate broke a rule (the server's refusal of ours
    /// is [`TlsError::Refused`]; of our node ID against our CN,
    /// [`crate::Error::IdentityRefused`]).
    #[error("{0}")]
    Certificate(#[source] CertError),
    /// The server refused our TLS session with a fatal alert: during the
    /// handshake, or, with TLS 1.3 (where the server judges our certificate
    /// after our side of the handshake is done), as the first thing read on
    /// the new connection, before any reply, when the alert is one that
    /// judges a handshake (about our certificate, `handshake_failure`,
    /// `decrypt_error`). The server ran no call on it.
    #[error("{}", Refusal(*alert))]
    Refused {
        /// The alert the server sent (`unknown_ca`, `access_denied`, ...).
        alert: TlsAlert,
    },
    /// The TLS handshake failed (protocol error, reset).
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

/// A TLS alert, by its code (RFC 8446, section 6), shown by its name
/// (`unknown_ca`). The constants name the alerts a server refuses a client
/// certificate with.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsAlert(u8);

impl TlsAlert {
    /// `handshake_failure` (40).
    pub const HANDSHAKE_FAILURE: TlsAlert = TlsAlert(40);
    /// `bad_certificate` (42).
    pub const BAD_CERTIFICATE: TlsAlert = TlsAlert(42);
    /// `unsupported_certificate` (43).
    pub const UNSUPPORTED_CERTIFICATE: TlsAlert = TlsAlert(43);
    /// `certificate_revoked` (44).
    pub const CERTIFICATE_REVOKED: TlsAlert = TlsAlert(44);
    /// `certificate_expired` (45).
    pub const CERTIFICATE_EXPIRED: TlsAlert = TlsAlert(45);
    /// `certificate_unknown` (46).
    pub const CERTIFICATE_UNKNOWN: TlsAlert = TlsAlert(46);
    /// `unknown_ca` (48): the server does not trust our CA.
    pub const UNKNOWN_CA: TlsAlert = TlsAlert(48);
    /// `access_denied` (49): a valid certificate, refused by the server's
    /// access rules (a peerwire server: it does not name the address the
    /// server saw us from).
    pub const ACCESS_DENIED: TlsAlert = TlsAlert(49);
    /// `certificate_required` (116): the server requires a client
    /// certificate.
    pub const CERTIFICATE_REQUIRED: TlsAlert = TlsAlert(116);

    /// The alert with this code.
    pub const fn from_code(code: u8) -> TlsAlert {
        TlsAlert(code)
    }

    /// The alert's code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The alert's name in RFC 8446 (and RFC 5246), if it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            21 => "decryption_failed",
            22 => "record_overflow",
            30 => "decompression_failure",
            40 => "handshake_failure",
            41 => "no_certificate",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            44 => "certificate_revoked",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            49 => "access_denied",
            50 => "decode_error",
            51 => "decrypt_error",
            60 => "export_restriction",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            90 => "user_canceled",
            100 => "no_renegotiation",
            109 => "missing_extension",
            110 => "unsupported_extension",
            111 => "certificate_unobtainable",
            112 => "unrecognized_name",
            113 => "bad_certificate_status_response",
            114 => "bad_certificate_hash_value",
            115 => "unknown_psk_identity",
            116 => "certificate_required",
            120 => "no_application_protocol",
            121 => "encrypted_client_hello_required",
            _ => return None,
        })
    }

    /// An alert about our certificate (rather than the session): the
    /// certificate alerts, `unknown_ca`, `access_denied` and
    /// `certificate_required`.
    pub fn is_about_certificate(self) -> bool {
        matches!(self.0, 41..=46 | 48 | 49 | 111 | 113 | 114 | 116)
    }

    /// An alert that only judges a handshake, so one that a server which
    /// sends it cannot have sent after running our calls: those about our
    /// certificate, `handshake_failure`, and `decrypt_error` (a handshake
    /// signature or `Finished` that does not verify; RFC 8446, section
    /// 6.2). Record-layer alerts such as `bad_record_mac` are not: they
    /// may end a session in which calls ran.
    pub(crate) fn judges_handshake(self) -> bool {
        self.is_about_certificate() || matches!(self.0, 40 | 51)
    }
}

impl fmt::Display for TlsAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "alert {}", self.0),
        }
    }
}

impl fmt::Debug for TlsAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsAlert({self} = {})", self.0)
    }
}

/// What a refusal by alert says: what was refused, the alert, and what
/// the common ones mean.
pub(crate) struct Refusal(pub(crate) TlsAlert);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alert = self.0;
        let what = if alert.is_about_certificate() {
            "certificate"
        } else {
            "TLS session"
        };
        write!(
            f,
            "the server refused our {what} with the TLS alert {alert}"
        )?;
        f.write_str(match alert {
            TlsAlert::UNKNOWN_CA => ": it does not trust the CA that signed our certificate",
            TlsAlert::CERTIFICATE_REQUIRED => ": it requires a client certificate",
            TlsAlert::CERTIFICATE_EXPIRED => ": our certificate has expired or is not valid yet",
            TlsAlert::CERTIFICATE_REVOKED => {
                ": a CRL it holds revokes our certificate (we need a new one)"
            }
            TlsAlert::ACCESS_DENIED => {
                ": the certificate is valid but its rules do not accept it (a peerwire server: its IP SANs do not name the address the server sees us at)"
            }
            _ => "",
        })
    }
}

/// The fatal alert a TLS stream's I/O error reports having received from
/// the peer (rustls returns it as an `io::Error` wrapping
/// `rustls::Error::AlertReceived`).
pub(crate) fn received_alert(error: &std::io::Error) -> Option<TlsAlert> {
    #[cfg(feature = "tls")]
    {
        match error.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::AlertReceived(alert) => Some(TlsAlert(u8::from(*alert))),
            _ => None,
        }
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = error;
        None
    }
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
