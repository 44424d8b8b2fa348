//! What the rules read out of a DER certificate: its subject CN, SANs,
//! serial number and end of validity, as a [`TlsPeer`].

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::{CertError, TlsPeer, TlsVersion};

/// What the rules need from a DER certificate: the subject CN and the
/// SANs. `version` is the session's protocol version. One that does not
/// parse is [`CertError::Unparsable`].
pub(crate) fn facts(der: &[u8], version: TlsVersion) -> Result<TlsPeer, CertError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Unparsable {
        detail: e.to_string(),
    })?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|attr| attr.as_str().ok())
        .map(str::to_owned);
    let mut ip_sans = Vec::new();
    let mut dns_sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")),
                        _ => continue,
                    };
                    ip_sans.push(ip.to_canonical());
                }
                GeneralName::DNSName(name) => dns_sans.push((*name).to_owned()),
                _ => {}
            }
        }
    }
    let not_after = u64::try_from(cert.validity().not_after.timestamp())
        .ok()
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    Ok(TlsPeer {
        cn,
        ip_sans,
        dns_sans,
        version,
        serial: serial_text(cert.raw_serial()),
        not_after,
    })
}

/// A serial number's DER bytes as upper-case hex, without the leading
/// zero bytes DER adds (openssl's form); "0" for zero.
pub(crate) fn serial_text(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    if start == raw.len() {
        return "0".into();
    }
    raw[start..].iter().map(|b| format!("{b:02X}")).collect()
}
