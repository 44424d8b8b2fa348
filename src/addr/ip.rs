//! [`ScopedIp`]: an IP address with an optional IPv6 scope, the [`Scope`]
//! itself, and the [`Family`] an address belongs to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::{AddrParseError, AddrParseErrorKind};

/// Longest interface name Linux accepts (`IFNAMSIZ` less the terminating NUL).
pub const MAX_INTERFACE_NAME: usize = 15;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an IP address, as written (an IPv4-mapped IPv6
    /// address is [`Family::V6`] here; see [`CanonicalIp`](super::CanonicalIp) for identity).
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The zone of a scoped IPv6 address: an interface, by name or by index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An interface name such as `eth0`, resolved when a socket is made.
    Name(String),
    /// An interface index, as the kernel numbers interfaces.
    Index(u32),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Name(name) => f.write_str(name),
            Scope::Index(index) => write!(f, "{index}"),
        }
    }
}

impl Scope {
    /// Parses the text after `%`: all digits is an index, anything else a
    /// name of printable ASCII without `/`, `:`, `%`, `[` or `]` (brackets
    /// would make `[address%scope]:port` ambiguous).
    fn parse(text: &str) -> Result<Scope, AddrParseErrorKind> {
        if text.is_empty() {
            return Err(AddrParseErrorKind::EmptyScope);
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(0) | Err(_) => Err(AddrParseErrorKind::InvalidScope),
                Ok(index) => Ok(Scope::Index(index)),
            };
        }
        let valid = text.len() <= MAX_INTERFACE_NAME
            && text
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"/:%[]".contains(&b));
        if valid {
            Ok(Scope::Name(text.to_owned()))
        } else {
            Err(AddrParseErrorKind::InvalidScope)
        }
    }
}

/// True for addresses that mean nothing without a zone: IPv6 unicast
/// link-local, `fe80::/10` (RFC 4291 §2.5.6).
pub fn needs_scope(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => false,
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// An IP address with an optional IPv6 scope: `fe80::a%eth0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopedIp {
    ip: IpAddr,
    scope: Option<Scope>,
}

impl ScopedIp {
    /// An address without a scope.
    pub fn new(ip: IpAddr) -> ScopedIp {
        ScopedIp { ip, scope: None }
    }

    /// An IPv6 address with a scope.
    pub fn scoped(ip: Ipv6Addr, scope: Scope) -> ScopedIp {
        ScopedIp {
            ip: IpAddr::V6(ip),
            scope: Some(scope),
        }
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The scope, if one was given.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The family of the address as written.
    pub fn family(&self) -> Family {
        Family::of(self.ip)
    }

    /// True for a link-local address, which needs a scope to be usable.
    pub fn is_link_local(&self) -> bool {
        needs_scope(self.ip)
    }

    /// The unspecified address of a family (`0.0.0.0` or `::`).
    pub fn unspecified(family: Family) -> ScopedIp {
        ScopedIp::new(match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        })
    }
}

impl From<IpAddr> for ScopedIp {
    fn from(ip: IpAddr) -> ScopedIp {
        ScopedIp::new(ip)
    }
}

impl From<Ipv4Addr> for ScopedIp {
    fn from(ip: Ipv4Addr) -> ScopedIp {
        ScopedIp::new(IpAddr::V4(ip))
    }
}

impl From<Ipv6Addr> for ScopedIp {
    fn from(ip: Ipv6Addr) -> ScopedIp {
        ScopedIp::new(IpAddr::V6(ip))
    }
}

impl fmt::Display for ScopedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(scope) => write!(f, "{}%{scope}", self.ip),
            None => write!(f, "{}", self.ip),
        }
    }
}

impl FromStr for ScopedIp {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<ScopedIp, AddrParseError> {
        parse_scoped_ip(text).map_err(|kind| AddrParseError::new(text, kind))
    }
}

pub(super) fn parse_scoped_ip(text: &str) -> Result<ScopedIp, AddrParseErrorKind> {
    match text.split_once('%') {
        Some((ip, scope)) => {
            let ip: IpAddr = ip.parse().map_err(|_| AddrParseErrorKind::InvalidIp)?;
            let IpAddr::V6(v6) = ip else {
                return Err(AddrParseErrorKind::ScopeOnIpv4);
            };
            Ok(ScopedIp::scoped(v6, Scope::parse(scope)?))
        }
        None => text
            .parse::<IpAddr>()
            .map(ScopedIp::new)
            .map_err(|_| AddrParseErrorKind::InvalidIp),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> ScopedIp {
        text.parse().unwrap()
    }

    #[test]
    fn scope_kinds() {
        assert_eq!(
            ip("fe80::a%eth0").scope(),
            Some(&Scope::Name("eth0".into()))
        );
        assert_eq!(ip("fe80::a%3").scope(), Some(&Scope::Index(3)));
        assert_eq!(ip("fe80::a").scope(), None);
    }

    #[test]
    fn error_message_names_input_and_reason() {
        let err = "fe80::a%".parse::<ScopedIp>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid address "fe80::a%": empty scope after '%'"#
        );
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        prop_oneof![
            (1u32..).prop_map(Scope::Index),
            "[a-z][a-z0-9._-]{0,14}".prop_map(Scope::Name),
        ]
    }

    pub(in crate::addr) fn arb_scoped_ip() -> impl Strategy<Value = ScopedIp> {
        prop_oneof![
            any::<Ipv4Addr>().prop_map(ScopedIp::from),
            any::<Ipv6Addr>().prop_map(ScopedIp::from),
            (any::<u64>(), arb_scope()).prop_map(|(low, scope)| {
                let ip = Ipv6Addr::from((0xfe80u128 << 112) | low as u128);
                ScopedIp::scoped(ip, scope)
            }),
        ]
    }

    proptest! {
        #[test]
        fn scoped_ip_display_parse_round_trip(addr in arb_scoped_ip()) {
            let text = addr.to_string();
            prop_assert_eq!(text.parse::<ScopedIp>().unwrap(), addr.clone());
            prop_assert_eq!(text.parse::<ScopedIp>().unwrap().to_string(), text);
        }
    }
}
