//! [`CanonicalIp`] and the canonical forms of networks and socket
//! addresses: the forms in which observed addresses are compared.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use super::needs_scope;

/// An address normalised for identity comparison.
///
/// - An IPv4-mapped IPv6 address (`::ffff:192.0.2.10`) becomes IPv4.
/// - A link-local address keeps its scope (an interface index); every other
///   address compares without one.
///
/// Two `CanonicalIp`s are equal exactly when they name the same peer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CanonicalIp {
    ip: IpAddr,
    scope_id: u32,
}

impl CanonicalIp {
    /// Normalises an address and an interface index (0 for none).
    pub fn new(ip: IpAddr, scope_id: u32) -> CanonicalIp {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        let scope_id = if needs_scope(ip) { scope_id } else { 0 };
        CanonicalIp { ip, scope_id }
    }

    /// The normalised address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The interface index for a link-local address, else 0.
    pub fn scope_id(&self) -> u32 {
        self.scope_id
    }
}

/// A network in canonical form, as observed addresses are compared: an
/// IPv4-mapped IPv6 network (`::ffff:192.0.2.0/120`) becomes its IPv4
/// network (`192.0.2.0/24`). A mapped network shorter than /96 reaches
/// outside the mapped space and has no IPv4 form: `None`.
pub fn canonical_net(net: ipnet::IpNet) -> Option<ipnet::IpNet> {
    let ipnet::IpNet::V6(v6) = net else {
        return Some(net.trunc());
    };
    let Some(v4) = v6.addr().to_ipv4_mapped() else {
        return Some(net.trunc());
    };
    if v6.prefix_len() < 96 {
        return None;
    }
    let v4 = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).expect("96 to 128 less 96");
    Some(ipnet::IpNet::V4(v4.trunc()))
}

/// A socket address in canonical form: an IPv4-mapped IPv6 address becomes
/// IPv4, and a scope id is kept only for link-local addresses.
pub fn canonical_socket_addr(addr: SocketAddr) -> SocketAddr {
    let canonical = CanonicalIp::from(addr);
    match canonical.ip {
        IpAddr::V4(v4) => SocketAddr::V4(std::net::SocketAddrV4::new(v4, addr.port())),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, addr.port(), 0, canonical.scope_id)),
    }
}

impl From<SocketAddr> for CanonicalIp {
    fn from(addr: SocketAddr) -> CanonicalIp {
        match addr {
            SocketAddr::V4(v4) => CanonicalIp::new(IpAddr::V4(*v4.ip()), 0),
            SocketAddr::V6(v6) => CanonicalIp::new(IpAddr::V6(*v6.ip()), v6.scope_id()),
        }
    }
}

impl fmt::Display for CanonicalIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope_id {
            0 => write!(f, "{}", self.ip),
            scope => write!(f, "{}%{scope}", self.ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn canonical_unmaps_ipv4_and_keeps_scope_only_for_link_local() {
        let mapped: SocketAddr = "[::ffff:192.0.2.10]:1".parse().unwrap();
        let plain: SocketAddr = "192.0.2.10:2".parse().unwrap();
        assert_eq!(CanonicalIp::from(mapped), CanonicalIp::from(plain));
        assert_eq!(
            CanonicalIp::from(mapped).ip(),
            "192.0.2.10".parse::<IpAddr>().unwrap()
        );

        let global_a = SocketAddr::V6(SocketAddrV6::new("2001:db8::1".parse().unwrap(), 1, 0, 4));
        let global_b = SocketAddr::V6(SocketAddrV6::new("2001:db8::1".parse().unwrap(), 1, 0, 0));
        assert_eq!(CanonicalIp::from(global_a), CanonicalIp::from(global_b));

        let ll_a = SocketAddr::V6(SocketAddrV6::new("fe80::a".parse().unwrap(), 1, 0, 2));
        let ll_b = SocketAddr::V6(SocketAddrV6::new("fe80::a".parse().unwrap(), 1, 0, 3));
        assert_ne!(CanonicalIp::from(ll_a), CanonicalIp::from(ll_b));
        assert_eq!(CanonicalIp::from(ll_a).to_string(), "fe80::a%2");
    }

    #[test]
    fn canonical_socket_addresses() {
        let c = |s: &str| canonical_socket_addr(s.parse().unwrap()).to_string();
        assert_eq!(c("[::ffff:192.0.2.10]:7"), "192.0.2.10:7");
        assert_eq!(c("[fe80::a%3]:7"), "[fe80::a%3]:7");
        let global = SocketAddr::V6(SocketAddrV6::new("2001:db8::1".parse().unwrap(), 7, 0, 4));
        assert_eq!(canonical_socket_addr(global).to_string(), "[2001:db8::1]:7");
    }

    proptest! {
        #[test]
        fn canonical_mapped_equals_v4(v4 in any::<Ipv4Addr>(), scope in any::<u32>()) {
            let mapped = CanonicalIp::new(IpAddr::V6(v4.to_ipv6_mapped()), scope);
            prop_assert_eq!(mapped, CanonicalIp::new(IpAddr::V4(v4), 0));
        }
    }
}
