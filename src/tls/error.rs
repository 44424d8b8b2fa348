//! Why TLS failed: [`TlsError`], with the certificate rules' [`CertError`],
//! our own material's [`TlsConfigError`], a handshake's [`HandshakeFailure`],
//! and the alerts ([`TlsAlert`]) a peer refuses us with.

use std::fmt;
use std::net::IpAddr;

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
        /// The certificate's serial number, as [`TlsPeer::serial`](super::TlsPeer::serial)
        /// shows it.
        serial: String,
        /// The certificate's CN.
        cn: Option<String>,
    },
    /// The certificate is not X.509 that parses. `detail` is the
    /// parser's account.
    #[error("the certificate does not parse as X.509: {detail}")]
    Unparsable {
        /// What the parser found wrong.
        detail: String,
    },
    /// A signature in the chain does not verify, or uses an algorithm
    /// that is not supported.
    #[error(
        "a signature in the certificate chain does not verify, or its algorithm is not supported"
    )]
    BadSignature,
    /// The certificate's extended key usage does not allow its use here (a
    /// client certificate needs `clientAuth`, a server's `serverAuth`).
    #[error(
        "the certificate's extended key usage does not allow this use (a client needs clientAuth, a server serverAuth)"
    )]
    WrongPurpose,
    /// Whether the certificate is revoked could not be told from the CRLs
    /// (one does not verify, or has expired): refused, failing closed.
    #[error("its revocation could not be checked against the CRLs: {detail}")]
    RevocationUnknown {
        /// What stopped the check.
        detail: String,
    },
    /// The verifier refused the certificate for another reason (an
    /// unhandled critical extension, say). `detail` is the verifier's
    /// account.
    #[error("certificate refused: {detail}")]
    Invalid {
        /// What the verifier found wrong.
        detail: String,
    },
}

/// Why TLS failed: a client's connection, or our own material
/// ([`TlsError::Config`]).
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
    /// The TLS handshake (or, in STARTTLS mode, the probe before it)
    /// failed other than by a certificate rule or a refusal.
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] HandshakeFailure),
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
    /// Our own TLS material or configuration is unusable.
    #[error("TLS configuration: {0}")]
    Config(#[source] TlsConfigError),
}

/// Why a TLS handshake failed, in [`TlsError::Handshake`] (on a client)
/// and [`VerdictReason::TlsHandshake`](crate::VerdictReason::TlsHandshake)
/// (on a server), when no certificate rule and no refusal explains it.
/// `detail` is the underlying account (the OS's or rustls's).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The connection failed or closed during the handshake (or the
    /// STARTTLS probe).
    #[error("the connection failed during the handshake ({kind:?}): {detail}")]
    Io {
        /// The OS error's kind (`UnexpectedEof` for a peer that closed).
        kind: std::io::ErrorKind,
        /// The OS error's text.
        detail: String,
    },
    /// The peer and we share no protocol version, cipher suite, key
    /// exchange group or signature scheme.
    #[error("the peer and we have nothing in common to agree on: {detail}")]
    Incompatible {
        /// What was missing.
        detail: String,
    },
    /// The peer broke the protocol: a malformed, unexpected or oversized
    /// message, or one that does not decrypt.
    #[error("the peer broke the TLS protocol: {detail}")]
    Misbehaved {
        /// What it did.
        detail: String,
    },
    /// The peer sent a fatal alert that does not judge a certificate (a
    /// server's alert to a client is [`TlsError::Refused`]).
    #[error("the peer sent the fatal alert {alert}")]
    Alert {
        /// The alert.
        alert: TlsAlert,
    },
    /// The server's handshake finished without a certificate.
    #[error("the server sent no certificate")]
    NoServerCertificate,
    /// Our side failed (no clock, no randomness, or another local error).
    #[error("our side of the handshake failed: {detail}")]
    Local {
        /// What failed.
        detail: String,
    },
}

/// Which part of our TLS material a [`TlsConfigError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsPart {
    /// Our certificate chain.
    Certificate,
    /// Our private key.
    Key,
    /// The CA certificates we trust.
    Ca,
    /// A certificate revocation list.
    Crl,
}

impl fmt::Display for TlsPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsPart::Certificate => "certificate",
            TlsPart::Key => "key",
            TlsPart::Ca => "CA",
            TlsPart::Crl => "CRL",
        })
    }
}

/// Why our own TLS material or configuration is unusable, in
/// [`TlsError::Config`]. `origin` names where the part came from: its
/// file's path, or `certificate PEM`, `key PEM`, `CA PEM`, `CRL PEM` or
/// `CRL DER` for material given in memory (with the block's place when a
/// file holds several CRLs). Texts from the PEM, X.509 and CRL parsers and
/// from rustls are kept as `detail`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read the TLS {part} file {origin}: {detail}")]
    Unreadable {
        /// Which part.
        part: TlsPart,
        /// The file's path.
        origin: String,
        /// The OS error's kind.
        kind: std::io::ErrorKind,
        /// The OS error's text.
        detail: String,
    },
    /// The text is not PEM that parses.
    #[error("{origin}: bad PEM: {detail}")]
    BadPem {
        /// Which part.
        part: TlsPart,
        /// Where it came from.
        origin: String,
        /// What the PEM parser found wrong.
        detail: String,
    },
    /// No block of the part's kind is in it (a `CERTIFICATE`, a private
    /// key, an `X509 CRL`).
    #[error("{origin}: {}", Missing(*part))]
    Missing {
        /// Which part.
        part: TlsPart,
        /// Where it came from.
        origin: String,
    },
    /// A certificate in it (ours, or a CA's) cannot be used.
    #[error("{origin}: unusable {part} certificate: {detail}")]
    BadCertificate {
        /// [`TlsPart::Certificate`] or [`TlsPart::Ca`].
        part: TlsPart,
        /// Where it came from.
        origin: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The private key is not the certificate's, or cannot be used.
    #[error("{key} does not fit {certificate}: {detail}")]
    KeyMismatch {
        /// Where the key came from.
        key: String,
        /// Where the certificate came from.
        certificate: String,
        /// What rustls found.
        detail: String,
    },
    /// A CRL does not parse (webpki takes version 2 CRLs with a
    /// `nextUpdate`, and no delta CRLs).
    #[error(
        "{origin}: not a usable CRL ({detail}); a version 2 CRL in DER or PEM, with a nextUpdate, is needed"
    )]
    BadCrl {
        /// Where it came from.
        origin: String,
        /// What the parser found wrong.
        detail: String,
    },
    /// A CRL's CA may not sign CRLs: its key usage lacks `cRLSign`.
    #[error("{origin}: its CA {} may not sign CRLs (its key usage lacks cRLSign)", issuer.escape_debug())]
    CrlSignerNotAllowed {
        /// Where the CRL came from.
        origin: String,
        /// Its issuer, as RFC 4514 text.
        issuer: String,
    },
    /// A CRL's signature does not verify with the key of the CA it names.
    #[error("{origin}: its signature does not verify with the key of its CA {} ({detail}): it is damaged, or signed by another key of that name", issuer.escape_debug())]
    CrlSignature {
        /// Where the CRL came from.
        origin: String,
        /// Its issuer, as RFC 4514 text.
        issuer: String,
        /// What the check found.
        detail: String,
    },
    /// A CRL's issuer is none of the CAs we trust nor one in our own chain,
    /// so it could never apply.
    #[error("{origin}: issued by {}, which is none of the CAs we trust (the CA file) nor one in our own certificate chain; a CRL is checked against the CA that issued it: add that CA, or leave the CRL out", issuer.escape_debug())]
    CrlIssuerUnknown {
        /// Where the CRL came from.
        origin: String,
        /// Its issuer, as RFC 4514 text.
        issuer: String,
    },
    /// rustls refused to build a configuration from the material.
    #[error("rustls refused the configuration: {detail}")]
    Rejected {
        /// rustls's account.
        detail: String,
    },
}

impl TlsConfigError {
    /// Which part of the material is at fault (a key that does not fit
    /// its certificate is the key's fault); `None` when rustls refused the
    /// whole.
    pub fn part(&self) -> Option<TlsPart> {
        Some(match self {
            TlsConfigError::Unreadable { part, .. }
            | TlsConfigError::BadPem { part, .. }
            | TlsConfigError::Missing { part, .. }
            | TlsConfigError::BadCertificate { part, .. } => *part,
            TlsConfigError::KeyMismatch { .. } => TlsPart::Key,
            TlsConfigError::BadCrl { .. }
            | TlsConfigError::CrlSignerNotAllowed { .. }
            | TlsConfigError::CrlSignature { .. }
            | TlsConfigError::CrlIssuerUnknown { .. } => TlsPart::Crl,
            TlsConfigError::Rejected { .. } => return None,
        })
    }
}

/// What a part with none of its blocks lacks.
struct Missing(TlsPart);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            TlsPart::Certificate => "no CERTIFICATE in it",
            TlsPart::Key => "no private key in it (PKCS#8, PKCS#1 or SEC1 PEM)",
            TlsPart::Ca => "no CA CERTIFICATE in it",
            TlsPart::Crl => "no X509 CRL in it (a PEM CRL starts with -----BEGIN X509 CRL-----)",
        })
    }
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

pub(crate) struct Ips<'a>(pub(crate) &'a [IpAddr]);

impl fmt::Display for Ips<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, ip) in self.0.iter().enumerate() {
            write!(f, "{}{ip}", if i == 0 { "" } else { ", " })?;
        }
        f.write_str("]")
    }
}
