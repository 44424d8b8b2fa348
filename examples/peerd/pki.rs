//! A throwaway certificate authority made in memory, for `peerd demo --tls`
//! and for the tests: tests/support/pki.rs includes this file, so the demo
//! and every test make their certificates with this one builder.
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
    BasicConstraints, CertificateParams, CertificateRevocationList,
    CertificateRevocationListParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber, date_time_ymd,
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
    /// Its serial number, upper-case hex (as peerwire shows it): random,
    /// so that two certificates of one CA never share one.
    pub serial: String,
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
    pub valid: Validity,
    /// The serial number's bytes, big-endian (a first byte below 0x80
    /// keeps it positive); `None` for a random one.
    pub serial: Option<Vec<u8>>,
}

/// When a certificate is valid (not before, not after).
#[derive(Clone, Copy, Debug, Default)]
pub enum Validity {
    /// From an hour ago (so a clock a little behind still takes it) to
    /// 30 days ahead.
    #[default]
    Month,
    /// From `.0` to `.1` seconds relative to now.
    FromNow(i64, i64),
    /// From January 1st of year `.0` to January 1st of year `.1`,
    /// 00:00 UTC.
    Years(i32, i32),
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
        set_validity(&mut params, Validity::Month);
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
        // 0x01 first: positive, and no leading zero byte to drop.
        let serial: Vec<u8> = spec.serial.clone().unwrap_or_else(|| {
            std::iter::once(1)
                .chain(rand::random::<u64>().to_be_bytes())
                .collect()
        });
        params.serial_number = Some(SerialNumber::from(serial.clone()));
        set_validity(&mut params, spec.valid);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a certificate signed by the CA");
        Leaf {
            cn: spec.cn.clone(),
            ips: spec.ips.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial.iter().map(|b| format!("{b:02X}")).collect(),
        }
    }

    /// A certificate revocation list of this CA, in PEM, revoking the
    /// certificates with these serials (as [`Leaf::serial`] shows them).
    pub fn crl_pem(&self, serials: &[&str]) -> String {
        self.crl(serials).pem().expect("PEM")
    }

    /// [`Authority::crl_pem`]'s list, to write as PEM or DER.
    pub fn crl(&self, serials: &[&str]) -> CertificateRevocationList {
        let bytes = |hex: &str| -> Vec<u8> {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("a hex serial"))
                .collect()
        };
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(bytes(serial)),
                    revocation_time: date_time_ymd(2024, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("a CRL signed by the CA")
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
    match cn {
        Some(cn) => name.push(DnType::CommonName, cn),
        // An organisation keeps a subject without a CN from being empty.
        None => name.push(DnType::OrganizationName, "peerwire throwaway PKI"),
    }
    name
}

/// Sets not-before and not-after.
fn set_validity(params: &mut CertificateParams, valid: Validity) {
    let (from, to) = match valid {
        Validity::Month => (-(BACKDATE.as_secs() as i64), VALIDITY.as_secs() as i64),
        Validity::FromNow(from, to) => (from, to),
        Validity::Years(from, to) => {
            params.not_before = date_time_ymd(from, 1, 1);
            params.not_after = date_time_ymd(to, 1, 1);
            return;
        }
    };
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
    params.not_before = shift(from);
    params.not_after = shift(to);
}
