//! Addresses, scopes, families and canonical comparison. Pure: no sockets.
//!
//! The text forms follow RFC 4007 §11 for scoped IPv6 addresses:
//!
//! | form                     | type                    |
//! |--------------------------|-------------------------|
//! | `192.0.2.10`             | [`ScopedIp`]            |
//! | `2001:db8::10`           | [`ScopedIp`]            |
//! | `fe80::a%eth0`           | [`ScopedIp`], scope by name  |
//! | `fe80::a%3`              | [`ScopedIp`], scope by index |
//! | `192.0.2.10:24007`       | [`Endpoint`]            |
//! | `[2001:db8::10]:24007`   | [`Endpoint`]            |
//! | `[fe80::a%eth0]:24007`   | [`Endpoint`]            |
//! | `unix:/run/x.socket`     | [`Address`] (or an endpoint) |
//!
//! Display gives back the same text (for addresses already in the canonical
//! RFC 5952 form). A scope given as a name stays a name here: it is resolved
//! to an interface index only when a socket is made, so a configuration can
//! be parsed on a host where the interface does not exist yet.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;

mod address;
pub(crate) use address::UNIX_NO_ADDR;
pub use address::{Address, MAX_UNIX_PATH, UNIX_PREFIX};

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
    /// address is [`Family::V6`] here; see [`CanonicalIp`] for identity).
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

fn parse_scoped_ip(text: &str) -> Result<ScopedIp, AddrParseErrorKind> {
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
        self.host.ip
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
        match self.host.ip {
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

/// What was wrong with an address's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrParseErrorKind {
    /// The IP address itself does not parse.
    InvalidIp,
    /// Nothing follows `%`.
    EmptyScope,
    /// The scope is neither a valid interface name nor an index from 1 up.
    InvalidScope,
    /// A scope was given for an IPv4 address.
    ScopeOnIpv4,
    /// An endpoint needs a `:port`.
    MissingPort,
    /// The port is not a number from 0 to 65535.
    InvalidPort,
    /// `[` without `]`.
    UnclosedBracket,
    /// An IPv6 endpoint must be written `[address]:port`.
    MissingBrackets,
    /// Nothing follows `unix:`.
    EmptyUnixPath,
    /// A Unix socket path longer than [`MAX_UNIX_PATH`] bytes.
    UnixPathTooLong,
    /// A Unix socket path with a NUL byte.
    InvalidUnixPath,
}

impl fmt::Display for AddrParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrParseErrorKind::InvalidIp => "not an IP address",
            AddrParseErrorKind::EmptyScope => "empty scope after '%'",
            AddrParseErrorKind::InvalidScope => {
                "scope is not an interface name (1-15 characters) or an index from 1"
            }
            AddrParseErrorKind::ScopeOnIpv4 => "only IPv6 addresses take a scope",
            AddrParseErrorKind::MissingPort => "missing ':port'",
            AddrParseErrorKind::InvalidPort => "port is not a number from 0 to 65535",
            AddrParseErrorKind::UnclosedBracket => "'[' without ']'",
            AddrParseErrorKind::MissingBrackets => {
                "an IPv6 address with a port is written [address]:port"
            }
            AddrParseErrorKind::EmptyUnixPath => "empty path after 'unix:'",
            AddrParseErrorKind::UnixPathTooLong => {
                "a Unix socket path is at most 107 bytes (sun_path)"
            }
            AddrParseErrorKind::InvalidUnixPath => "a Unix socket path cannot hold a NUL byte",
        })
    }
}

/// An address that did not parse, with the text and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrParseError {
    input: String,
    kind: AddrParseErrorKind,
}

impl AddrParseError {
    fn new(input: &str, kind: AddrParseErrorKind) -> AddrParseError {
        // Bound what an error may hold: the input can come from anywhere.
        let input: String = input.chars().take(128).collect();
        AddrParseError { input, kind }
    }

    /// The reason.
    pub fn kind(&self) -> AddrParseErrorKind {
        self.kind
    }

    /// The text that failed to parse (at most 128 characters of it).
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address {:?}: {}", self.input, self.kind)
    }
}

impl std::error::Error for AddrParseError {}

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

/// The configured source addresses: at most one per family.
///
/// The destination's family selects the source. A v6 source may be
/// link-local, with a scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    v4: Option<ScopedIp>,
    v6: Option<ScopedIp>,
}

impl Sources {
    /// No sources: the kernel chooses for every destination.
    pub fn new() -> Sources {
        Sources::default()
    }

    /// Sets the source for the address's family, replacing any earlier one.
    pub fn with(mut self, source: impl Into<ScopedIp>) -> Sources {
        let source = source.into();
        match source.family() {
            Family::V4 => self.v4 = Some(source),
            Family::V6 => self.v6 = Some(source),
        }
        self
    }

    /// The source for a family.
    pub fn for_family(&self, family: Family) -> Option<&ScopedIp> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    /// True when no source is configured.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// What to do with a destination whose family has no configured source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FamilyPolicy {
    /// Fail with [`crate::Error::NoSourceForFamily`] when a source is
    /// configured for the other family only. With no source at all, the
    /// kernel chooses.
    #[default]
    Strict,
    /// Let the kernel choose the source for a family with none configured.
    KernelChooses,
}

/// Which end of a connection an address belongs to, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The address we bind before connecting.
    Source,
    /// The address we connect to.
    Destination,
    /// An address we listen on.
    Listen,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Destination => "destination",
            Role::Listen => "listen address",
        })
    }
}

/// Picks the source for `destination` and checks the link-local rules.
///
/// Returns `Ok(None)` when the kernel is to choose. Every violation is
/// found here, before any socket exists:
/// - a link-local destination or source without a scope;
/// - source and destination scopes that differ (when both are written the
///   same way; a name against an index is compared once the name is resolved);
/// - under [`FamilyPolicy::Strict`], a destination whose family has no source
///   while the other family has one.
#[doc(hidden)]
pub fn select_source<'a>(
    sources: &'a Sources,
    policy: FamilyPolicy,
    destination: &Endpoint,
) -> Result<Option<&'a ScopedIp>, crate::Error> {
    check_scope(destination.host(), Role::Destination)?;
    let family = destination.family();
    let source = match sources.for_family(family) {
        Some(source) => source,
        None => {
            let other = family.other();
            if policy == FamilyPolicy::Strict && sources.for_family(other).is_some() {
                return Err(crate::Error::NoSourceForFamily {
                    destination: destination.clone(),
                    family,
                    configured: other,
                });
            }
            return Ok(None);
        }
    };
    check_scope(source, Role::Source)?;
    if let (Some(ours), Some(theirs)) = (source.scope(), destination.host().scope()) {
        let comparable = matches!(
            (ours, theirs),
            (Scope::Name(_), Scope::Name(_)) | (Scope::Index(_), Scope::Index(_))
        );
        if source.is_link_local()
            && destination.host().is_link_local()
            && comparable
            && ours != theirs
        {
            return Err(crate::Error::ScopeMismatch {
                source_addr: source.clone(),
                destination: destination.clone(),
            });
        }
    }
    Ok(Some(source))
}

/// Fails when a link-local address has no scope.
#[doc(hidden)]
pub fn check_scope(address: &ScopedIp, role: Role) -> Result<(), crate::Error> {
    if address.is_link_local() && address.scope().is_none() {
        return Err(crate::Error::MissingScope {
            role,
            address: address.clone(),
        });
    }
    Ok(())
}

/// Orders destinations for Happy Eyeballs (RFC 8305 §4): the first address's
/// family first, then the families alternate, each keeping its own order.
#[doc(hidden)]
pub fn interleave(destinations: &[Endpoint]) -> Vec<Endpoint> {
    let Some(first) = destinations.first() else {
        return Vec::new();
    };
    let preferred = first.family();
    let (mut primary, mut secondary): (Vec<_>, Vec<_>) = destinations
        .iter()
        .cloned()
        .partition(|d| d.family() == preferred);
    let mut out = Vec::with_capacity(destinations.len());
    primary.reverse();
    secondary.reverse();
    loop {
        match (primary.pop(), secondary.pop()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn scope_kinds() {
        assert_eq!(
            ip("fe80::a%eth0").scope(),
            Some(&Scope::Name("eth0".into()))
        );
        assert_eq!(ip("fe80::a%3").scope(), Some(&Scope::Index(3)));
        assert_eq!(ip("fe80::a").scope(), None);
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
    fn error_message_names_input_and_reason() {
        let err = "fe80::a%".parse::<ScopedIp>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid address "fe80::a%": empty scope after '%'"#
        );
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

    #[test]
    fn destination_family_selects_source() {
        let sources = Sources::new()
            .with(ip("192.0.2.10"))
            .with(ip("2001:db8::10"));
        let pick = |d: &str| {
            select_source(&sources, FamilyPolicy::Strict, &ep(d))
                .unwrap()
                .cloned()
        };
        assert_eq!(pick("192.0.2.1:1"), Some(ip("192.0.2.10")));
        assert_eq!(pick("[2001:db8::1]:1"), Some(ip("2001:db8::10")));
        // An IPv4-mapped destination is an IPv6 socket: it takes the v6 source.
        assert_eq!(pick("[::ffff:192.0.2.1]:1"), Some(ip("2001:db8::10")));
    }

    #[test]
    fn strict_policy_refuses_the_other_family() {
        let sources = Sources::new().with(ip("192.0.2.10"));
        let err =
            select_source(&sources, FamilyPolicy::Strict, &ep("[2001:db8::1]:1")).unwrap_err();
        assert!(matches!(
            err,
            crate::Error::NoSourceForFamily {
                family: Family::V6,
                configured: Family::V4,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(
            msg.contains("IPv6") && msg.contains("IPv4") && msg.contains("[2001:db8::1]:1"),
            "{msg}"
        );
        let chosen = select_source(
            &sources,
            FamilyPolicy::KernelChooses,
            &ep("[2001:db8::1]:1"),
        )
        .unwrap();
        assert_eq!(chosen, None);
        assert_eq!(
            select_source(
                &Sources::new(),
                FamilyPolicy::Strict,
                &ep("[2001:db8::1]:1")
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn link_local_rules() {
        let scoped = Sources::new().with(ip("fe80::a%eth0"));
        let unscoped = Sources::new().with(ip("fe80::a"));
        let check = |s: &Sources, d: &str| {
            select_source(s, FamilyPolicy::Strict, &ep(d)).map(|s| s.cloned())
        };

        assert_eq!(
            check(&scoped, "[fe80::b%eth0]:1").unwrap(),
            Some(ip("fe80::a%eth0"))
        );
        assert!(matches!(
            check(&scoped, "[fe80::b]:1"),
            Err(crate::Error::MissingScope {
                role: Role::Destination,
                ..
            })
        ));
        assert!(matches!(
            check(&unscoped, "[fe80::b%eth0]:1"),
            Err(crate::Error::MissingScope {
                role: Role::Source,
                ..
            })
        ));
        assert!(matches!(
            check(&scoped, "[fe80::b%eth1]:1"),
            Err(crate::Error::ScopeMismatch { .. })
        ));
        let by_index = Sources::new().with(ip("fe80::a%2"));
        assert!(matches!(
            check(&by_index, "[fe80::b%3]:1"),
            Err(crate::Error::ScopeMismatch { .. })
        ));
        // A name against an index is left for after resolution.
        assert!(check(&by_index, "[fe80::b%eth0]:1").is_ok());
        // A global source may reach a scoped link-local destination.
        assert!(check(&Sources::new().with(ip("2001:db8::10")), "[fe80::b%eth0]:1").is_ok());
        // With no source configured, a link-local destination still needs a scope.
        assert!(matches!(
            check(&Sources::new(), "[fe80::b]:1"),
            Err(crate::Error::MissingScope {
                role: Role::Destination,
                ..
            })
        ));
    }

    #[test]
    fn interleave_prefers_first_family_then_alternates() {
        let list: Vec<Endpoint> = [
            "[2001:db8::1]:1",
            "[2001:db8::2]:1",
            "192.0.2.1:1",
            "[2001:db8::3]:1",
            "192.0.2.2:1",
        ]
        .iter()
        .map(|t| ep(t))
        .collect();
        let order: Vec<String> = interleave(&list).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            order,
            [
                "[2001:db8::1]:1",
                "192.0.2.1:1",
                "[2001:db8::2]:1",
                "192.0.2.2:1",
                "[2001:db8::3]:1"
            ]
        );
        assert!(interleave(&[]).is_empty());
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        prop_oneof![
            (1u32..).prop_map(Scope::Index),
            "[a-z][a-z0-9._-]{0,14}".prop_map(Scope::Name),
        ]
    }

    fn arb_scoped_ip() -> impl Strategy<Value = ScopedIp> {
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

        #[test]
        fn canonical_mapped_equals_v4(v4 in any::<Ipv4Addr>(), scope in any::<u32>()) {
            let mapped = CanonicalIp::new(IpAddr::V6(v4.to_ipv6_mapped()), scope);
            prop_assert_eq!(mapped, CanonicalIp::new(IpAddr::V4(v4), 0));
        }

        #[test]
        fn interleave_is_a_permutation_that_alternates(families in proptest::collection::vec(any::<bool>(), 0..12)) {
            let list: Vec<Endpoint> = families.iter().enumerate().map(|(i, v6)| {
                if *v6 { Endpoint::new(Ipv6Addr::from(0x2001_0db8u128 << 96 | i as u128), 1) }
                else { Endpoint::new(Ipv4Addr::from(0xc000_0200 | i as u32), 1) }
            }).collect();
            let out = interleave(&list);
            let mut sorted_in: Vec<String> = list.iter().map(|e| e.to_string()).collect();
            let mut sorted_out: Vec<String> = out.iter().map(|e| e.to_string()).collect();
            sorted_in.sort();
            sorted_out.sort();
            prop_assert_eq!(sorted_in, sorted_out);
            if let Some(first) = list.first() {
                prop_assert_eq!(&out[0], first);
                // While both families remain, they alternate.
                let both = list.iter().filter(|e| e.family() == first.family()).count()
                    .min(list.iter().filter(|e| e.family() != first.family()).count());
                for pair in out[..both * 2].chunks(2) {
                    prop_assert_ne!(pair[0].family(), pair[1].family());
                }
            }
        }
    }
}
