//! [`Endpoint`]: an IP address, with its scope, and a port.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::str::FromStr;

use super::ip::parse_scoped_ip;
use super::{AddrParseError, AddrParseErrorKind, Family, Scope, ScopedIp};

/// An address and a port: `192.0.2.10:24007`, `[fe80::a%eth0]:24007`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: ScopedIp,
    port: u16,
}

impl Endpoint {
    /// An endpoint from an address and a port.
    pub fn new(host: impl Into<ScopedIp>, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// The address part.
    pub fn host(&self) -> &ScopedIp {
        &self.host
    }

    /// The IP address.
    pub fn ip(&self) -> IpAddr {
        self.host.ip()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The family of the address.
    pub fn family(&self) -> Family {
        self.host.family()
    }

    /// Parses an endpoint, or an address alone with `default_port`:
    /// `"192.0.2.10"` and `"192.0.2.10:24007"` both parse.
    pub fn parse_with_default_port(
        text: &str,
        default_port: u16,
    ) -> Result<Endpoint, AddrParseError> {
        match text.parse::<ScopedIp>() {
            Ok(host) => Ok(Endpoint::new(host, default_port)),
            Err(_) => text.parse(),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    /// An endpoint from a socket address; a non-zero IPv6 scope id becomes
    /// [`Scope::Index`].
    fn from(addr: SocketAddr) -> Endpoint {
        match addr {
            SocketAddr::V4(v4) => Endpoint::new(*v4.ip(), v4.port()),
            SocketAddr::V6(v6) => Endpoint::new(scoped_from_v6(&v6), v6.port()),
        }
    }
}

fn scoped_from_v6(v6: &SocketAddrV6) -> ScopedIp {
    match v6.scope_id() {
        0 => ScopedIp::from(*v6.ip()),
        index => ScopedIp::scoped(*v6.ip(), Scope::Index(index)),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.ip() {
            IpAddr::V4(_) => write!(f, "{}:{}", self.host, self.port),
            IpAddr::V6(_) => write!(f, "[{}]:{}", self.host, self.port),
        }
    }
}

impl FromStr for Endpoint {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<Endpoint, AddrParseError> {
        parse_endpoint(text).map_err(|kind| AddrParseError::new(text, kind))
    }
}

fn parse_endpoint(text: &str) -> Result<Endpoint, AddrParseErrorKind> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or(AddrParseErrorKind::UnclosedBracket)?;
        let port = after
            .strip_prefix(':')
            .ok_or(AddrParseErrorKind::MissingPort)?;
        let host = parse_scoped_ip(inside)?;
        if host.family() != Family::V6 {
            return Err(AddrParseErrorKind::InvalidIp);
        }
        (host, port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or(AddrParseErrorKind::MissingPort)?;
        let host = parse_scoped_ip(host)?;
        if host.family() != Family::V4 {
            // `2001:db8::10:24007` is ambiguous: IPv6 with a port needs brackets.
            return Err(AddrParseErrorKind::MissingBrackets);
        }
        (host, port)
    };
    let port_ok = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|_| port_ok)
        .ok_or(AddrParseErrorKind::InvalidPort)?;
    Ok(Endpoint { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::ip::tests::arb_scoped_ip;
    use proptest::prelude::*;

    fn ip(text: &str) -> ScopedIp {
        text.parse().unwrap()
    }

    fn ep(text: &str) -> Endpoint {
        text.parse().unwrap()
    }

    #[test]
    fn round_trips_exactly() {
        for text in ["192.0.2.10", "2001:db8::10", "fe80::a%eth0", "fe80::a%3"] {
            assert_eq!(ip(text).to_string(), text);
        }
        for text in [
            "192.0.2.10:24007",
            "[2001:db8::10]:24007",
            "[fe80::a%eth0]:24007",
            "[fe80::a%3]:0",
        ] {
            assert_eq!(ep(text).to_string(), text);
        }
    }

    #[test]
    fn rejects_bad_text_with_reason() {
        let kind = |t: &str| t.parse::<ScopedIp>().unwrap_err().kind();
        assert_eq!(kind("192.0.2.10%eth0"), AddrParseErrorKind::ScopeOnIpv4);
        assert_eq!(kind("fe80::a%"), AddrParseErrorKind::EmptyScope);
        assert_eq!(kind("fe80::a%0"), AddrParseErrorKind::InvalidScope);
        assert_eq!(
            kind("fe80::a%99999999999"),
            AddrParseErrorKind::InvalidScope
        );
        assert_eq!(
            kind("fe80::a%averyveryverylongname"),
            AddrParseErrorKind::InvalidScope
        );
        assert_eq!(kind("fe80::a%et/h0"), AddrParseErrorKind::InvalidScope);
        // Brackets would break the `[address%scope]:port` form.
        assert_eq!(kind("::%]"), AddrParseErrorKind::InvalidScope);
        assert_eq!(kind("fe80::a%et[h0"), AddrParseErrorKind::InvalidScope);
        assert_eq!(kind("not-an-ip"), AddrParseErrorKind::InvalidIp);
        let kind = |t: &str| t.parse::<Endpoint>().unwrap_err().kind();
        assert_eq!(kind("192.0.2.10"), AddrParseErrorKind::MissingPort);
        assert_eq!(kind("192.0.2.10:70000"), AddrParseErrorKind::InvalidPort);
        assert_eq!(kind("192.0.2.10:+80"), AddrParseErrorKind::InvalidPort);
        assert_eq!(kind("192.0.2.10:"), AddrParseErrorKind::InvalidPort);
        assert_eq!(
            kind("[2001:db8::10:24007"),
            AddrParseErrorKind::UnclosedBracket
        );
        assert_eq!(kind("[2001:db8::10]"), AddrParseErrorKind::MissingPort);
        assert_eq!(
            kind("2001:db8::10:24007"),
            AddrParseErrorKind::MissingBrackets
        );
        assert_eq!(kind("[192.0.2.10]:1"), AddrParseErrorKind::InvalidIp);
    }

    #[test]
    fn default_port() {
        assert_eq!(
            Endpoint::parse_with_default_port("192.0.2.10", 24007).unwrap(),
            ep("192.0.2.10:24007")
        );
        assert_eq!(
            Endpoint::parse_with_default_port("[fe80::a%eth0]:1", 24007).unwrap(),
            ep("[fe80::a%eth0]:1")
        );
    }

    proptest! {
        #[test]
        fn endpoint_display_parse_round_trip(addr in arb_scoped_ip(), port in any::<u16>()) {
            let endpoint = Endpoint::new(addr, port);
            let text = endpoint.to_string();
            prop_assert_eq!(text.parse::<Endpoint>().unwrap(), endpoint);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,64}") {
            let _ = text.parse::<ScopedIp>();
            let _ = text.parse::<Endpoint>();
        }
    }
}
