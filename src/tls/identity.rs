//! Our certificate chain, key, trusted roots and revocation lists, loaded
//! from PEM.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::certificate::facts;
use super::revocation::RevocationList;
use super::{TlsConfigError, TlsError, TlsPart, TlsPeer, provider};

/// Who we are over TLS: our certificate chain and its private key, the CA
/// roots that sign the peers we trust, and the revocation lists (CRLs) of
/// those CAs, if any ([`TlsIdentity::with_crls`]). Cheap to clone.
///
/// A running server or client takes a new identity without a restart:
/// [`RunningServer::update_tls`](crate::RunningServer::update_tls),
/// [`Client::update_tls`](crate::Client::update_tls).
#[derive(Clone)]
pub struct TlsIdentity {
    parts: Arc<Parts>,
}

struct Parts {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    /// The CA certificates behind `roots`, to check a CRL's issuer.
    cas: Vec<CertificateDer<'static>>,
    crls: Vec<RevocationList>,
    /// Our end-entity certificate's facts.
    own: TlsPeer,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cn", &self.parts.own.cn)
            .field("ip_sans", &self.parts.own.ip_sans)
            .field("serial", &self.parts.own.serial)
            .field("roots", &self.parts.roots.len())
            .field("crls", &self.parts.crls)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads our certificate chain (`cert`, end-entity first), its private
    /// key (`key`: PKCS#8, PKCS#1 or SEC1) and the CA roots (`ca`) from PEM
    /// files. Every problem is a [`TlsError::Config`] naming the file: not
    /// readable, no certificate or key in it, or a key that does not match
    /// the certificate.
    pub fn from_pem_files(cert: &Path, key: &Path, ca: &Path) -> Result<TlsIdentity, TlsError> {
        let read = |path: &Path, part: TlsPart| {
            std::fs::read(path).map_err(|error| {
                TlsError::Config(TlsConfigError::Unreadable {
                    part,
                    origin: path.display().to_string(),
                    kind: error.kind(),
                    detail: error.to_string(),
                })
            })
        };
        let (cert_pem, key_pem, ca_pem) = (
            read(cert, TlsPart::Certificate)?,
            read(key, TlsPart::Key)?,
            read(ca, TlsPart::Ca)?,
        );
        Self::build(&cert_pem, &key_pem, &ca_pem, |part| match part {
            TlsPart::Key => key.display().to_string(),
            TlsPart::Ca => ca.display().to_string(),
            _ => cert.display().to_string(),
        })
    }

    /// Like [`TlsIdentity::from_pem_files`], from PEM text in memory; the
    /// errors name the parts `certificate PEM`, `key PEM` and `CA PEM`.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<TlsIdentity, TlsError> {
        Self::build(cert, key, ca, |part| format!("{part} PEM"))
    }

    fn build(
        cert: &[u8],
        key: &[u8],
        ca: &[u8],
        name: impl Fn(TlsPart) -> String,
    ) -> Result<TlsIdentity, TlsError> {
        let bad_pem = |part: TlsPart, error: &dyn std::fmt::Display| {
            TlsError::Config(TlsConfigError::BadPem {
                part,
                origin: name(part),
                detail: error.to_string(),
            })
        };
        let missing = |part: TlsPart| {
            TlsError::Config(TlsConfigError::Missing {
                part,
                origin: name(part),
            })
        };
        let bad_certificate = |part: TlsPart, error: &dyn std::fmt::Display| {
            TlsError::Config(TlsConfigError::BadCertificate {
                part,
                origin: name(part),
                detail: error.to_string(),
            })
        };
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_pem(TlsPart::Certificate, &e))?;
        if chain.is_empty() {
            return Err(missing(TlsPart::Certificate));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => missing(TlsPart::Key),
            other => bad_pem(TlsPart::Key, &other),
        })?;
        let mut roots = RootCertStore::empty();
        let mut cas = Vec::new();
        for root in CertificateDer::pem_slice_iter(ca) {
            let root = root.map_err(|e| bad_pem(TlsPart::Ca, &e))?;
            roots
                .add(root.clone())
                .map_err(|e| bad_certificate(TlsPart::Ca, &e))?;
            cas.push(root);
        }
        if roots.is_empty() {
            return Err(missing(TlsPart::Ca));
        }
        // The key must be the certificate's: rustls compares the public
        // key of the certificate with the one the private key gives.
        let provider = provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(
            |e| {
                TlsError::Config(TlsConfigError::KeyMismatch {
                    key: name(TlsPart::Key),
                    certificate: name(TlsPart::Certificate),
                    detail: e.to_string(),
                })
            },
        )?;
        let own = facts(&chain[0], super::TlsVersion::Unknown)
            .map_err(|e| bad_certificate(TlsPart::Certificate, &e))?;
        Ok(TlsIdentity {
            parts: Arc::new(Parts {
                chain,
                key,
                roots: Arc::new(roots),
                cas,
                crls: Vec::new(),
                own,
            }),
        })
    }

    /// This identity with `crls` as its revocation lists, in place of any
    /// it had (an empty list: none). Both sides check the peer's chain
    /// against them at every handshake and refuse a revoked certificate
    /// with [`CertError::Revoked`](super::CertError::Revoked); a live
    /// connection whose peer a list given by an update revokes is closed.
    ///
    /// Each list must be issued by one of our CAs (or by a CA in our own
    /// certificate chain), one allowed to sign CRLs, and its signature
    /// must verify with that CA's key: otherwise it is an
    /// [`TlsError::Config`] naming the list's file, and nothing changes. A
    /// certificate whose issuer has no list here is not checked for
    /// revocation; a list's `nextUpdate` is not enforced.
    pub fn with_crls(
        &self,
        crls: impl IntoIterator<Item = RevocationList>,
    ) -> Result<TlsIdentity, TlsError> {
        let crls: Vec<RevocationList> = crls.into_iter().collect();
        let issuers: Vec<CertificateDer<'static>> = self
            .parts
            .cas
            .iter()
            .chain(self.parts.chain.iter().skip(1))
            .cloned()
            .collect();
        for crl in &crls {
            crl.check_issuer(&issuers)?;
        }
        let parts = &self.parts;
        Ok(TlsIdentity {
            parts: Arc::new(Parts {
                chain: parts.chain.clone(),
                key: parts.key.clone_key(),
                roots: parts.roots.clone(),
                cas: parts.cas.clone(),
                crls,
                own: parts.own.clone(),
            }),
        })
    }

    /// The revocation lists ([`TlsIdentity::with_crls`]).
    pub fn crls(&self) -> &[RevocationList] {
        &self.parts.crls
    }

    /// Our own certificate's serial number, as
    /// [`TlsPeer::serial`](super::TlsPeer::serial) shows it.
    pub fn serial(&self) -> &str {
        &self.parts.own.serial
    }

    /// Our own certificate's subject CN.
    pub fn cn(&self) -> Option<&str> {
        self.parts.own.cn.as_deref()
    }

    /// Our own certificate's IP SANs.
    pub fn ip_sans(&self) -> &[IpAddr] {
        &self.parts.own.ip_sans
    }

    /// The end of our own certificate's validity (`notAfter`), when it is
    /// after the Unix epoch.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.parts.own.not_after
    }

    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.parts.chain.clone()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.parts.key.clone_key()
    }

    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        self.parts.roots.clone()
    }
}
