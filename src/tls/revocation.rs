//! Certificate revocation lists (CRLs): loading them, checking each against
//! the CA that issued it, and the revocation check of a peer's chain — at
//! the handshake, and again when the lists change under a live connection.
//!
//! The check is webpki's (the one rustls uses): it finds the path from the
//! peer's certificate to one of our roots, then, for each certificate on
//! the path whose issuer has a CRL here, verifies that CRL's signature with
//! the issuer's key and looks the certificate's serial up in it. A
//! certificate whose issuer has no CRL here is not checked (the policy
//! etcd follows): a CRL is a list of what is revoked, not of what is
//! allowed. The CRL's `nextUpdate` is not enforced: an old list still
//! revokes what it lists.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, SignatureVerificationAlgorithm, UnixTime,
};

use super::certificate::{facts, serial_text};
use super::{CertError, TlsConfigError, TlsError, TlsPart};

/// A certificate revocation list (RFC 5280, section 5): the serial numbers
/// of the certificates a CA has revoked, signed by that CA. Cheap to clone.
///
/// Load them with [`RevocationList::load`] (PEM or DER),
/// [`RevocationList::from_pem`] or [`RevocationList::from_der`], and give
/// them to [`TlsIdentity::with_crls`](super::TlsIdentity::with_crls), which
/// checks that each is signed by one of the CAs the identity trusts. A
/// peer whose certificate (or one in its chain) a list revokes is refused
/// at the handshake with [`CertError::Revoked`].
#[derive(Clone)]
pub struct RevocationList {
    parts: Arc<Parts>,
}

struct Parts {
    /// Where it came from, for messages: a file name, or `CRL PEM`, with
    /// its place in the file when the file holds more than one.
    source: String,
    der: Vec<u8>,
    /// The issuer's name, RFC 4514 text.
    issuer: String,
    /// The serials it lists, as [`super::TlsPeer::serial`] shows them.
    serials: Vec<String>,
    /// As the check uses it.
    parsed: webpki::CertRevocationList<'static>,
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("source", &self.parts.source)
            .field("issuer", &self.parts.issuer)
            .field("revoked", &self.parts.serials.len())
            .finish()
    }
}

impl RevocationList {
    /// Loads the CRLs in the file at `path`: PEM (one or more `X509 CRL`
    /// blocks) or a single DER CRL, told apart by content. Every problem is
    /// a [`TlsError::Config`] naming the file: not readable, no CRL in it, or
    /// a CRL that does not parse (webpki takes version 2 CRLs with a
    /// `nextUpdate`, and no delta CRLs).
    pub fn load(path: &Path) -> Result<Vec<RevocationList>, TlsError> {
        let bytes = std::fs::read(path).map_err(|error| {
            TlsError::Config(TlsConfigError::Unreadable {
                part: TlsPart::Crl,
                origin: path.display().to_string(),
                kind: error.kind(),
                detail: error.to_string(),
            })
        })?;
        let name = path.display().to_string();
        if looks_like_pem(&bytes) {
            Self::pem(&bytes, &name)
        } else {
            Ok(vec![Self::parse(bytes, name)?])
        }
    }

    /// The CRLs in PEM text (one or more `X509 CRL` blocks; other blocks
    /// are skipped). None at all is a [`TlsError::Config`], as is a block
    /// that does not parse.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<RevocationList>, TlsError> {
        Self::pem(pem, "CRL PEM")
    }

    /// One CRL in DER. One that does not parse is a [`TlsError::Config`].
    pub fn from_der(der: &[u8]) -> Result<RevocationList, TlsError> {
        Self::parse(der.to_vec(), "CRL DER".into())
    }

    /// The name of the CA that issued the list, as RFC 4514 text
    /// (`CN=cluster CA`).
    pub fn issuer(&self) -> &str {
        &self.parts.issuer
    }

    /// The serial numbers it revokes, in upper-case hex as
    /// [`TlsPeer::serial`](super::TlsPeer::serial) shows them.
    pub fn serials(&self) -> &[String] {
        &self.parts.serials
    }

    /// Where the list came from: its file (and its place in the file when
    /// the file holds more than one), or `CRL PEM` / `CRL DER`.
    pub fn source(&self) -> &str {
        &self.parts.source
    }

    fn pem(pem: &[u8], name: &str) -> Result<Vec<RevocationList>, TlsError> {
        let blocks = CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                TlsError::Config(TlsConfigError::BadPem {
                    part: TlsPart::Crl,
                    origin: name.to_owned(),
                    detail: e.to_string(),
                })
            })?;
        if blocks.is_empty() {
            return Err(TlsError::Config(TlsConfigError::Missing {
                part: TlsPart::Crl,
                origin: name.to_owned(),
            }));
        }
        let many = blocks.len() > 1;
        blocks
            .into_iter()
            .enumerate()
            .map(|(i, der)| {
                let source = if many {
                    format!("{name} (CRL {} of the file)", i + 1)
                } else {
                    name.to_owned()
                };
                Self::parse(der.as_ref().to_vec(), source)
            })
            .collect()
    }

    fn parse(der: Vec<u8>, source: String) -> Result<RevocationList, TlsError> {
        use x509_parser::prelude::FromDer;
        use x509_parser::revocation_list::CertificateRevocationList;
        let refused = |detail: &dyn fmt::Display| {
            TlsError::Config(TlsConfigError::BadCrl {
                origin: source.clone(),
                detail: detail.to_string(),
            })
        };
        let parsed = webpki::OwnedCertRevocationList::from_der(&der).map_err(|e| refused(&e))?;
        let (issuer, serials) = {
            let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| refused(&e))?;
            let serials = crl
                .iter_revoked_certificates()
                .map(|revoked| serial_text(revoked.raw_serial()))
                .collect();
            (crl.issuer().to_string(), serials)
        };
        Ok(RevocationList {
            parts: Arc::new(Parts {
                source,
                der,
                issuer,
                serials,
                parsed: parsed.into(),
            }),
        })
    }

    /// Checks that one of `cas` issued this list: its issuer names one
    /// of them, that CA may sign CRLs (no key usage, or one with
    /// `cRLSign`), and the list's signature verifies with its key. A list
    /// that fails would fail every handshake of that CA's peers, or never
    /// apply; either way it is refused, naming the file.
    pub(crate) fn check_issuer(&self, cas: &[CertificateDer<'_>]) -> Result<(), TlsError> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        use x509_parser::revocation_list::CertificateRevocationList;
        let source = &self.parts.source;
        let (_, crl) =
            CertificateRevocationList::from_der(&self.parts.der).expect("parsed when loaded");
        for ca in cas {
            let Ok((_, ca)) = X509Certificate::from_der(ca) else {
                continue;
            };
            if ca.subject().as_raw() != crl.issuer().as_raw() {
                continue;
            }
            if let Ok(Some(usage)) = ca.key_usage()
                && !usage.value.crl_sign()
            {
                return Err(TlsError::Config(TlsConfigError::CrlSignerNotAllowed {
                    origin: source.clone(),
                    issuer: self.parts.issuer.clone(),
                }));
            }
            return crl.verify_signature(ca.public_key()).map_err(|e| {
                TlsError::Config(TlsConfigError::CrlSignature {
                    origin: source.clone(),
                    issuer: self.parts.issuer.clone(),
                    detail: e.to_string(),
                })
            });
        }
        Err(TlsError::Config(TlsConfigError::CrlIssuerUnknown {
            origin: source.clone(),
            issuer: self.parts.issuer.clone(),
        }))
    }
}

/// PEM text starts, after blank space, with `-----BEGIN`; DER with a
/// SEQUENCE tag (0x30).
fn looks_like_pem(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"-----BEGIN")
}

/// Whose certificate a chain is: a client's (judged by a server) or a
/// server's (judged by a client). The check honours the same extended key
/// usage as the chain check before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Usage {
    Client,
    Server,
}

/// One side's revocation check: the CRLs in force and the signature
/// algorithms to verify them with.
///
/// webpki consults, for each certificate, the first CRL of its issuer it
/// is given. So that every list counts when one CA has several (an older
/// and a newer one, or lists split by reason), the lists are dealt into
/// layers holding at most one list per issuer, and the chain is checked
/// against each layer: revoked if any layer revokes it. With one list per
/// CA (the usual case) there is one layer.
pub(crate) struct Revocation {
    layers: Vec<Vec<RevocationList>>,
    algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

/// Why a revocation check did not pass.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A CRL lists the certificate, or one in its chain.
    Revoked,
    /// The check could not be made (a CRL whose signature does not verify,
    /// say): the handshake fails closed.
    Unchecked(webpki::Error),
}

impl Revocation {
    pub(crate) fn new(
        crls: &[RevocationList],
        algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
    ) -> Revocation {
        let mut layers: Vec<Vec<RevocationList>> = Vec::new();
        for crl in crls {
            let issuer = crl.parts.parsed.issuer();
            let free = layers.iter_mut().find(|layer| {
                layer
                    .iter()
                    .all(|other| other.parts.parsed.issuer() != issuer)
            });
            match free {
                Some(layer) => layer.push(crl.clone()),
                None => layers.push(vec![crl.clone()]),
            }
        }
        Revocation { layers, algorithms }
    }

    /// Checks `end_entity` with `intermediates`, a chain that has passed
    /// the chain check against `roots` at `at`, against the CRLs. Free
    /// without CRLs.
    pub(crate) fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        roots: &RootCertStore,
        at: UnixTime,
        usage: Usage,
    ) -> Result<(), Failure> {
        if self.layers.is_empty() {
            return Ok(());
        }
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(Failure::Unchecked)?;
        let usage = match usage {
            Usage::Client => webpki::KeyUsage::client_auth(),
            Usage::Server => webpki::KeyUsage::server_auth(),
        };
        let mut unchecked = None;
        for layer in &self.layers {
            let crls: Vec<&webpki::CertRevocationList<'static>> =
                layer.iter().map(|crl| &crl.parts.parsed).collect();
            let options = webpki::RevocationOptionsBuilder::new(&crls)
                .expect("a layer holds a CRL")
                .with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                .build();
            let verified = cert.verify_for_usage(
                self.algorithms,
                &roots.roots,
                intermediates,
                at,
                usage,
                Some(options),
                None,
            );
            match verified {
                Ok(_) => {}
                Err(webpki::Error::CertRevoked) => return Err(Failure::Revoked),
                Err(error) => unchecked = unchecked.or(Some(error)),
            }
        }
        match unchecked {
            Some(error) => Err(Failure::Unchecked(error)),
            None => Ok(()),
        }
    }
}

impl Failure {
    /// The rule's error, naming the certificate (`end_entity`).
    pub(crate) fn cert_error(&self, end_entity: &CertificateDer<'_>) -> CertError {
        match self {
            Failure::Revoked => {
                let peer = facts(end_entity, super::TlsVersion::Unknown).unwrap_or_default();
                CertError::Revoked {
                    serial: peer.serial,
                    cn: peer.cn,
                }
            }
            Failure::Unchecked(error) => CertError::RevocationUnknown {
                detail: error.to_string(),
            },
        }
    }
}

/// What a peer presented at its handshake, kept to judge it again when
/// the CRLs change: its chain, the roots it was verified against, and
/// when.
#[derive(Debug)]
pub(crate) struct Presented {
    chain: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    at: UnixTime,
    usage: Usage,
}

impl Presented {
    /// A chain (end-entity first) that verified against `roots` just now.
    /// `None` for an empty chain.
    pub(crate) fn new(
        chain: &[CertificateDer<'static>],
        roots: Arc<RootCertStore>,
        usage: Usage,
    ) -> Option<Presented> {
        if chain.is_empty() {
            return None;
        }
        Some(Presented {
            chain: chain.to_vec(),
            roots,
            at: UnixTime::now(),
            usage,
        })
    }

    /// The certificate's revocation by `revocation`'s lists, judged as at
    /// the handshake (against the same roots, at the same time, so that a
    /// certificate that has expired since, or roots that changed, do not
    /// count): `Some` only when a list revokes it. Established connections
    /// go on through every other change.
    pub(crate) fn revoked(&self, revocation: &Revocation) -> Option<CertError> {
        let (end_entity, intermediates) = self.chain.split_first()?;
        match revocation.check(end_entity, intermediates, &self.roots, self.at, self.usage) {
            Err(failure @ Failure::Revoked) => Some(failure.cert_error(end_entity)),
            Err(Failure::Unchecked(error)) => {
                tracing::debug!(%error, "revocation of a live connection's certificate not checkable; it goes on");
                None
            }
            Ok(()) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
        DnType, IsCa, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
    };

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    fn crl(ca: &CertifiedIssuer<'static, KeyPair>, serial: u8) -> RevocationList {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(vec![serial]),
                revocation_time: rcgen::date_time_ymd(2024, 6, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        };
        RevocationList::from_der(params.signed_by(ca).unwrap().der()).unwrap()
    }

    #[test]
    fn serials_are_upper_case_hex_without_leading_zero_bytes() {
        assert_eq!(serial_text(&[0x00, 0x80, 0x0a]), "800A");
        assert_eq!(serial_text(&[0x10, 0x01]), "1001");
        assert_eq!(serial_text(&[0x00]), "0");
        assert_eq!(serial_text(&[]), "0");
    }

    #[test]
    fn pem_and_der_are_told_apart_by_content() {
        assert!(looks_like_pem(b"\n  -----BEGIN X509 CRL-----\n"));
        assert!(!looks_like_pem(&[0x30, 0x82, 0x01, 0x00]));
        assert!(!looks_like_pem(b""));
    }

    #[test]
    fn several_lists_of_one_ca_go_into_layers_of_one_list_per_ca() {
        let (first, second) = (ca("first"), ca("second"));
        let lists = [
            crl(&first, 1),
            crl(&first, 2),
            crl(&second, 3),
            crl(&first, 4),
        ];
        let algorithms = super::super::provider()
            .signature_verification_algorithms
            .all;
        let revocation = Revocation::new(&lists, algorithms);
        let layers: Vec<Vec<&str>> = revocation
            .layers
            .iter()
            .map(|layer| layer.iter().map(|crl| crl.serials()[0].as_str()).collect())
            .collect();
        assert_eq!(layers, [vec!["01", "03"], vec!["02"], vec!["04"]]);
    }

    #[test]
    fn a_list_names_its_issuer_and_serials() {
        let list = crl(&ca("cluster CA"), 0x2a);
        assert_eq!(list.issuer(), "CN=cluster CA");
        assert_eq!(list.serials(), ["2A"]);
        assert_eq!(list.source(), "CRL DER");
    }
}
