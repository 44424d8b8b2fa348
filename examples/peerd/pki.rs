//! A throwaway certificate authority made in memory, for `peerd demo --tls`
//! and for the tests (which include this file as `support::pki`).
//!
//! Every certificate follows the rules a peerwire node checks: the subject
//! CN is the node ID (GlusterFS's convention), and the IP SANs are the
//! addresses the node connects from and listens on. Keys are ECDSA P-256,
//! which rustls (ring) and OpenSSL (glusterd) both take. Nothing here is
//! fit for a real cluster: the CA key lives only as long as the process.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

/// How long a certificate is valid, counted from an hour ago (so a clock
/// a little behind still takes it).
const VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
const BACKDATE: Duration = Duration::from_secs(3600);

/// A CA: its certificate (the roots a peer trusts) and the key that signs.
pub struct Authority {
    name: String,
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its private key, in PEM.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The subject CN it was made with.
    pub cn: Option<String>,
    /// Its IP SANs.
    pub ips: Vec<IpAddr>,
    /// The certificate (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// Its key, PKCS #8 (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
}

/// The files [`Leaf::write`] made.
#[derive(Clone, Debug)]
pub struct LeafFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a leaf certificate says and when it is valid.
#[derive(Clone, Debug, Default)]
pub struct LeafSpec {
    /// The subject CN; `None` leaves the subject without one.
    pub cn: Option<String>,
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
    /// Validity as (not before, not after), in seconds relative to now;
    /// `None` for the default (an hour ago to 30 days ahead).
    pub valid: Option<(i64, i64)>,
}

impl LeafSpec {
    /// A node's certificate: CN = the node ID, and its addresses.
    pub fn node(cn: &str, ips: &[IpAddr]) -> LeafSpec {
        LeafSpec {
            cn: Some(cn.to_owned()),
            ips: ips.to_vec(),
            ..LeafSpec::default()
        }
    }
}

impl Authority {
    /// A new CA whose certificate's subject CN is `name`.
    pub fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("an ECDSA P-256 key");
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(Some(name));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, None);
        let cert = params
            .self_signed(&key)
            .expect("a self-signed CA certificate");
        Authority {
            name: name.to_owned(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's subject CN.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA certificate in PEM: what a peer puts in its `ca` file.
    pub fn ca_pem(&self) -> &str {
        &self.pem
    }

    /// A node's certificate: CN = `cn`, IP SANs = `ips`, for both client
    /// and server use.
    pub fn issue(&self, cn: &str, ips: &[IpAddr]) -> Leaf {
        self.issue_spec(&LeafSpec::node(cn, ips))
    }

    /// A certificate as `spec` says.
    pub fn issue_spec(&self, spec: &LeafSpec) -> Leaf {
        let key = KeyPair::generate().expect("an ECDSA P-256 key");
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(spec.cn.as_deref());
        params.subject_alt_names =
            spec.ips
                .iter()
                .map(|ip| SanType::IpAddress(*ip))
                .chain(spec.dns.iter().map(|name| {
                    SanType::DnsName(name.clone().try_into().expect("an ASCII DNS name"))
                }))
                .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, spec.valid);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a certificate signed by the CA");
        Leaf {
            cn: spec.cn.clone(),
            ips: spec.ips.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate to `path`.
    pub fn write_ca(&self, path: &Path) -> io::Result<PathBuf> {
        fs::write(path, &self.pem)?;
        Ok(path.to_owned())
    }
}

impl Leaf {
    /// Writes `STEM.pem` and `STEM.key` (mode 0600) into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> io::Result<LeafFiles> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        fs::write(&cert, &self.cert_pem)?;
        write_private(&key, &self.key_pem)?;
        Ok(LeafFiles { cert, key })
    }
}

/// Writes `contents` to a new file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

fn subject(cn: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    // An organisation keeps a subject without a CN from being empty.
    name.push(DnType::OrganizationName, "peerwire throwaway PKI");
    if let Some(cn) = cn {
        name.push(DnType::CommonName, cn);
    }
    name
}

/// Sets not-before and not-after, `valid` being seconds relative to now.
fn set_validity(params: &mut CertificateParams, valid: Option<(i64, i64)>) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    let now = date_time_ymd(1970, 1, 1) + since_epoch;
    let shift = |secs: i64| {
        if secs >= 0 {
            now + Duration::from_secs(secs.unsigned_abs())
        } else {
            now - Duration::from_secs(secs.unsigned_abs())
        }
    };
    let (from, to) = valid.unwrap_or((-(BACKDATE.as_secs() as i64), VALIDITY.as_secs() as i64));
    params.not_before = shift(from);
    params.not_after = shift(to);
}
