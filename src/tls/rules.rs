//! The certificate rules, pure: a certificate's facts and the address or
//! ID to compare in, a verdict out. Chain checks (expiry, issuer) are
//! rustls's; these decide whom a valid certificate names.

use std::net::IpAddr;

use super::{CertError, TlsPeer};

/// The certificate names `address` as an IP SAN. Both sides are compared
/// in canonical form: an IPv4-mapped IPv6 address as IPv4. A link-local
/// address matches by IP alone (a certificate carries no zone; the scope
/// is the peer table's business).
pub fn check_address(peer: &TlsPeer, address: IpAddr) -> Result<(), CertError> {
    let address = address.to_canonical();
    if peer.ip_sans.is_empty() {
        return Err(CertError::NoIpSan {
            cn: peer.cn.clone(),
        });
    }
    if peer.ip_sans.iter().any(|san| san.to_canonical() == address) {
        return Ok(());
    }
    Err(CertError::IpMismatch {
        observed: address,
        sans: peer.ip_sans.clone(),
        cn: peer.cn.clone(),
    })
}

/// The certificate's subject CN is exactly `expected`.
pub fn check_cn(peer: &TlsPeer, expected: &str) -> Result<(), CertError> {
    if peer.cn.as_deref() == Some(expected) {
        return Ok(());
    }
    Err(CertError::CnMismatch {
        expected: expected.to_owned(),
        cn: peer.cn.clone(),
    })
}

/// The server's rule for a client certificate whose chain verified: it
/// names the `observed` source IP, and, when the caller has claimed a
/// node ID (in HELLO), its CN is that ID.
pub fn check_client_certificate(
    peer: &TlsPeer,
    observed: IpAddr,
    claimed: Option<&str>,
) -> Result<(), CertError> {
    check_address(peer, observed)?;
    match claimed {
        Some(claimed) => check_cn(peer, claimed),
        None => Ok(()),
    }
}

/// The client's rule for a server certificate whose chain verified: it
/// names the `dialled` IP, or, when `expected_cn` is given, has that CN
/// instead (glusterd's certificates usually carry only a CN).
pub fn check_server_certificate(
    peer: &TlsPeer,
    dialled: IpAddr,
    expected_cn: Option<&str>,
) -> Result<(), CertError> {
    match expected_cn {
        Some(cn) => check_cn(peer, cn),
        None => check_address(peer, dialled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: &[&str]) -> TlsPeer {
        TlsPeer {
            cn: cn.map(str::to_owned),
            ip_sans: sans.iter().map(|s| s.parse().unwrap()).collect(),
            dns_sans: Vec::new(),
            version: crate::tls::TlsVersion::Tls13,
            ..TlsPeer::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ip_san_equal_to_the_observed_address_passes() {
        let c = cert(Some("node-a"), &["192.0.2.10", "2001:db8::10"]);
        assert_eq!(check_address(&c, ip("192.0.2.10")), Ok(()));
        assert_eq!(check_address(&c, ip("2001:db8::10")), Ok(()));
    }

    #[test]
    fn a_v4_mapped_observed_address_is_compared_as_ipv4() {
        let c = cert(Some("node-a"), &["192.0.2.10"]);
        assert_eq!(check_address(&c, ip("::ffff:192.0.2.10")), Ok(()));
        // And a mapped SAN matches the plain IPv4 caller.
        let mapped = cert(Some("node-a"), &["::ffff:192.0.2.10"]);
        assert_eq!(check_address(&mapped, ip("192.0.2.10")), Ok(()));
        // The error shows the canonical form.
        assert_eq!(
            check_address(&c, ip("::ffff:192.0.2.11")),
            Err(CertError::IpMismatch {
                observed: ip("192.0.2.11"),
                sans: vec![ip("192.0.2.10")],
                cn: Some("node-a".into()),
            })
        );
    }

    #[test]
    fn a_link_local_san_matches_by_ip_alone() {
        let c = cert(Some("node-a"), &["fe80::a"]);
        assert_eq!(check_address(&c, ip("fe80::a")), Ok(()));
        assert!(matches!(
            check_address(&c, ip("fe80::b")),
            Err(CertError::IpMismatch { .. })
        ));
    }

    #[test]
    fn another_ip_is_a_mismatch_naming_cn_sans_and_address() {
        let c = cert(Some("node-a"), &["192.0.2.10"]);
        let error = check_address(&c, ip("192.0.2.30")).unwrap_err();
        assert_eq!(
            error,
            CertError::IpMismatch {
                observed: ip("192.0.2.30"),
                sans: vec![ip("192.0.2.10")],
                cn: Some("node-a".into()),
            }
        );
        let text = error.to_string();
        for part in ["node-a", "192.0.2.10", "192.0.2.30"] {
            assert!(text.contains(part), "{text}");
        }
    }

    #[test]
    fn a_certificate_without_ip_sans_names_no_address() {
        let c = cert(Some("node-a"), &[]);
        assert_eq!(
            check_address(&c, ip("192.0.2.10")),
            Err(CertError::NoIpSan {
                cn: Some("node-a".into())
            })
        );
        assert!(
            check_address(&c, ip("192.0.2.10"))
                .unwrap_err()
                .to_string()
                .contains("node-a")
        );
    }

    #[test]
    fn the_cn_must_equal_the_claimed_id() {
        let c = cert(Some("node-a"), &["192.0.2.10"]);
        assert_eq!(check_cn(&c, "node-a"), Ok(()));
        assert_eq!(
            check_cn(&c, "node-b"),
            Err(CertError::CnMismatch {
                expected: "node-b".into(),
                cn: Some("node-a".into()),
            })
        );
        let none = cert(None, &["192.0.2.10"]);
        assert!(matches!(
            check_cn(&none, "node-a"),
            Err(CertError::CnMismatch { cn: None, .. })
        ));
    }

    #[test]
    fn the_server_rule_checks_the_address_first_then_the_claimed_id() {
        let c = cert(Some("node-a"), &["192.0.2.10"]);
        assert_eq!(
            check_client_certificate(&c, ip("192.0.2.10"), Some("node-a")),
            Ok(())
        );
        assert_eq!(check_client_certificate(&c, ip("192.0.2.10"), None), Ok(()));
        assert!(matches!(
            check_client_certificate(&c, ip("192.0.2.10"), Some("node-b")),
            Err(CertError::CnMismatch { .. })
        ));
        // A right CN from the wrong address is still refused.
        assert!(matches!(
            check_client_certificate(&c, ip("192.0.2.30"), Some("node-a")),
            Err(CertError::IpMismatch { .. })
        ));
    }

    #[test]
    fn the_client_rule_is_the_dialled_ip_or_the_configured_cn() {
        let c = cert(Some("glusterd-1"), &["192.0.2.10"]);
        assert_eq!(check_server_certificate(&c, ip("192.0.2.10"), None), Ok(()));
        assert!(matches!(
            check_server_certificate(&c, ip("192.0.2.11"), None),
            Err(CertError::IpMismatch { .. })
        ));
        // By CN, the address does not matter.
        assert_eq!(
            check_server_certificate(&c, ip("192.0.2.11"), Some("glusterd-1")),
            Ok(())
        );
        assert!(matches!(
            check_server_certificate(&c, ip("192.0.2.10"), Some("glusterd-2")),
            Err(CertError::CnMismatch { .. })
        ));
        let cn_only = cert(Some("glusterd-1"), &[]);
        assert!(matches!(
            check_server_certificate(&cn_only, ip("192.0.2.10"), None),
            Err(CertError::NoIpSan { .. })
        ));
    }

    #[test]
    fn peer_text_in_messages_is_escaped() {
        let c = cert(Some("evil\nline"), &[]);
        let text = check_cn(&c, "node-a").unwrap_err().to_string();
        assert!(!text.contains('\n'), "{text}");
    }
}
