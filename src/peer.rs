//! Peer identity (pure): node IDs, the peer table, admission lists, the
//! handshake messages and the verdict on a HELLO.
//!
//! A peer is who its source address says it is. Every decision here takes
//! the address the server *observed*, normalised by [`CanonicalIp`]: an
//! IPv4-mapped IPv6 address becomes IPv4, and only a link-local address
//! keeps its scope (the receiving interface).
//!
//! # The handshake program
//!
//! Program [`HANDSHAKE_PROGRAM`] (542136146, `0x2050_5752`), version 1.
//! Procedure 0 is NULL; procedure 1 is HELLO. In XDR (RFC 4506):
//!
//! ```text
//! struct hello_args {
//!     string   node_id<255>;          /* the caller's node ID, UTF-8     */
//!     unsigned versions<16>;          /* protocol versions it speaks     */
//!     string  *cluster_id;            /* optional: string<255>           */
//! };
//!
//! struct observed_addr {
//!     unsigned family;                /* 4 or 6                          */
//!     opaque   address<16>;           /* 4 or 16 bytes, network order    */
//!     unsigned scope_id;              /* the server's interface index for
//!                                        a link-local address, else 0    */
//!     unsigned port;
//! };
//!
//! struct hello_res {
//!     string       node_id<255>;      /* the server's node ID            */
//!     observed_addr observed;         /* the caller as the server saw it */
//!     unsigned     version;           /* the protocol version chosen     */
//! };
//! ```
//!
//! A refused HELLO gets MSG_DENIED / AUTH_ERROR: AUTH_REJECTEDCRED for an
//! unknown node ID, a known one from an address outside its list, a caller
//! claiming the server's own ID, or another cluster; AUTH_TOOWEAK for any
//! other call before HELLO succeeded. The server then closes the connection.
//!
//! # What this does not protect against
//!
//! An address is not a secret. Anyone who can send packets with a forged
//! source address on the link (or who controls a router on the path) can
//! claim that address, and with it the identity bound to it. Admission
//! lists narrow who can try. Closing the gap needs cryptography: mutual
//! TLS whose certificates name the peer's IP address, checked against the
//! observed address in the same way.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use ipnet::IpNet;

use crate::addr::{AddrParseError, CanonicalIp, Scope};
use crate::proto::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};
use crate::proto::{DecodeError, DecodeErrorKind};

/// The handshake program number (in the user-defined range).
pub const HANDSHAKE_PROGRAM: u32 = 0x2050_5752;
/// The handshake program's version.
pub const HANDSHAKE_VERSION: u32 = 1;
/// The HELLO procedure.
pub const HELLO: u32 = 1;
/// The protocol versions this crate speaks.
pub const PROTOCOL_VERSIONS: &[u32] = &[1];
/// The bound on a node or cluster ID, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// A node's identity: 1 to 255 bytes of UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

/// A node or cluster ID that is empty or longer than 255 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidId {
    len: usize,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an ID must be 1 to {MAX_ID_LEN} bytes, not {}", self.len)
    }
}

impl std::error::Error for InvalidId {}

impl NodeId {
    /// A node ID, if `id` is 1 to 255 bytes.
    pub fn new(id: impl Into<String>) -> Result<NodeId, InvalidId> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(InvalidId { len: id.len() });
        }
        Ok(NodeId(id))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<NodeId, InvalidId> {
        NodeId::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which interfaces a link-local entry accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScopeRule {
    /// Any interface.
    Any,
    /// One interface, by name or index. A name is resolved to an index
    /// when the table is installed ([`PeerTable::resolve_scopes`]).
    Only(Scope),
}

/// One allowed address: a network (a single address is a /32 or /128) and,
/// for link-local networks, the interfaces it may arrive on.
///
/// Text forms: `192.0.2.10`, `192.0.2.0/24`, `2001:db8::/48`,
/// `fe80::a%eth0`, `fe80::a%3`, `fe80::/64%eth0`, and `fe80::a` (any scope).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AllowedAddress {
    net: IpNet,
    scope: ScopeRule,
}

impl AllowedAddress {
    /// An entry for a network, with a scope rule (ignored unless the
    /// network is link-local).
    pub fn new(net: IpNet, scope: ScopeRule) -> AllowedAddress {
        AllowedAddress {
            net: net.trunc(),
            scope,
        }
    }

    /// The network.
    pub fn net(&self) -> IpNet {
        self.net
    }

    /// The scope rule.
    pub fn scope(&self) -> &ScopeRule {
        &self.scope
    }

    /// True when `observed` is inside this entry.
    pub fn matches(&self, observed: CanonicalIp) -> bool {
        if !self.net.contains(&observed.ip()) {
            return false;
        }
        if observed.scope_id() == 0 {
            return true; // Not link-local: the scope does not count.
        }
        match &self.scope {
            ScopeRule::Any => true,
            ScopeRule::Only(Scope::Index(index)) => *index == observed.scope_id(),
            // An unresolved name matches nothing: fail closed.
            ScopeRule::Only(Scope::Name(_)) => false,
        }
    }
}

impl fmt::Display for AllowedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let single = self.net.prefix_len() == self.net.max_prefix_len();
        if single {
            write!(f, "{}", self.net.addr())?;
        } else {
            write!(f, "{}", self.net)?;
        }
        match &self.scope {
            ScopeRule::Only(scope) => write!(f, "%{scope}"),
            ScopeRule::Any => Ok(()),
        }
    }
}

impl FromStr for AllowedAddress {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<AllowedAddress, AddrParseError> {
        let (body, scope) = match text.rsplit_once('%') {
            Some((body, scope)) => (body, Some(scope)),
            None => (text, None),
        };
        let bad = || text.parse::<crate::ScopedIp>().unwrap_err();
        let net: IpNet = match body.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match body.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => return Err(bad()),
            },
        };
        let scope = match scope {
            None => ScopeRule::Any,
            Some(scope) => {
                // Reuse the address parser's scope rules.
                let probe = format!("fe80::%{scope}").parse::<crate::ScopedIp>()?;
                if net.addr().is_ipv4() {
                    return Err(bad());
                }
                ScopeRule::Only(probe.scope().cloned().expect("parsed with a scope"))
            }
        };
        Ok(AllowedAddress::new(net, scope))
    }
}

/// Node IDs and the addresses each may connect from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerTable {
    peers: std::collections::BTreeMap<NodeId, Vec<AllowedAddress>>,
}

impl PeerTable {
    /// An empty table.
    pub fn new() -> PeerTable {
        PeerTable::default()
    }

    /// Adds addresses for a node (appending to any it has).
    pub fn allow(
        mut self,
        node: NodeId,
        addresses: impl IntoIterator<Item = AllowedAddress>,
    ) -> PeerTable {
        self.peers.entry(node).or_default().extend(addresses);
        self
    }

    /// The addresses a node may connect from.
    pub fn addresses(&self, node: &NodeId) -> Option<&[AllowedAddress]> {
        self.peers.get(node).map(Vec::as_slice)
    }

    /// Every node in the table.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.peers.keys()
    }

    /// Turns scope names into interface indexes with `resolve`. Returns the
    /// names that did not resolve; their entries match nothing.
    pub fn resolve_scopes(&mut self, resolve: impl Fn(&str) -> Option<u32>) -> Vec<String> {
        let mut missing = Vec::new();
        for entry in self.peers.values_mut().flatten() {
            if let ScopeRule::Only(Scope::Name(name)) = &entry.scope {
                match resolve(name) {
                    Some(index) => entry.scope = ScopeRule::Only(Scope::Index(index)),
                    None => missing.push(name.clone()),
                }
            }
        }
        missing
    }
}

/// Address admission: applied when a connection is accepted, before a byte
/// is read. Reject first; then, if the allow list is not empty, the address
/// must be in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Networks refused outright.
    pub reject: Vec<IpNet>,
    /// Networks admitted; empty admits everything not rejected.
    pub allow: Vec<IpNet>,
}

impl Admission {
    /// True when a connection from `observed` may be read.
    pub fn admits(&self, observed: CanonicalIp) -> bool {
        let ip = observed.ip();
        if self.reject.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// HELLO's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The caller's node ID.
    pub node: NodeId,
    /// The protocol versions the caller speaks.
    pub versions: Vec<u32>,
    /// The caller's cluster, if it names one.
    pub cluster: Option<String>,
}

/// HELLO's results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloReply {
    /// The server's node ID.
    pub node: NodeId,
    /// The caller's address as the server observed it, in canonical form
    /// (IPv4-mapped addresses as IPv4). For a link-local
    /// address the scope is the server's own interface index.
    pub observed: SocketAddr,
    /// The protocol version chosen.
    pub version: u32,
}

fn decode_id(r: &mut XdrReader<'_>) -> Result<NodeId, DecodeError> {
    let at = r.clone();
    let text = r.string(MAX_ID_LEN as u32)?;
    NodeId::new(text).map_err(|_| at.error(DecodeErrorKind::Invalid("empty node ID")))
}

impl XdrEncode for Hello {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.string(self.node.as_str());
        w.array(&self.versions, |w, v| w.u32(*v));
        w.optional(self.cluster.as_ref(), |w, c| w.string(c));
    }
}

impl XdrDecode for Hello {
    fn decode(r: &mut XdrReader<'_>) -> Result<Hello, DecodeError> {
        Ok(Hello {
            node: decode_id(r)?,
            versions: r.array(16, XdrReader::u32)?,
            cluster: r.optional(|r| r.string(MAX_ID_LEN as u32).map(str::to_owned))?,
        })
    }
}

fn encode_observed(w: &mut XdrWriter<'_>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            w.u32(4);
            w.opaque(&v4.ip().octets());
            w.u32(0);
        }
        SocketAddr::V6(v6) => {
            w.u32(6);
            w.opaque(&v6.ip().octets());
            w.u32(v6.scope_id());
        }
    }
    w.u32(u32::from(addr.port()));
}

fn decode_observed(r: &mut XdrReader<'_>) -> Result<SocketAddr, DecodeError> {
    let at = r.clone();
    let family = r.u32()?;
    let address = r.opaque(16)?;
    let scope_id = r.u32()?;
    let port = r.u32()?;
    let port =
        u16::try_from(port).map_err(|_| at.error(DecodeErrorKind::Invalid("port over 65535")))?;
    let bad = || {
        at.error(DecodeErrorKind::Invalid(
            "address family is not 4 or 6 with 4 or 16 bytes",
        ))
    };
    match (family, address.len()) {
        (4, 4) => {
            let ip = Ipv4Addr::new(address[0], address[1], address[2], address[3]);
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        (6, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(address);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(octets),
                port,
                0,
                scope_id,
            )))
        }
        _ => Err(bad()),
    }
}

impl XdrEncode for HelloReply {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.string(self.node.as_str());
        encode_observed(w, &self.observed);
        w.u32(self.version);
    }
}

impl XdrDecode for HelloReply {
    fn decode(r: &mut XdrReader<'_>) -> Result<HelloReply, DecodeError> {
        Ok(HelloReply {
            node: decode_id(r)?,
            observed: decode_observed(r)?,
            version: r.u32()?,
        })
    }
}

/// How strictly a server checks claimed IDs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdentityMode {
    /// The claimed ID must be in the table, and the observed address in
    /// its list.
    #[default]
    Strict,
    /// Any ID from an admitted address is accepted and recorded.
    Open,
}

/// Why a HELLO was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The claimed ID is not in the peer table.
    UnknownNode,
    /// The claimed ID is known, but not from this address.
    AddressNotAllowed {
        /// The addresses the ID may connect from.
        expected: Vec<AllowedAddress>,
    },
    /// The caller claims to be this server.
    ClaimsOurId,
    /// The caller names another cluster (or none where one is required).
    OtherCluster {
        /// The cluster it named.
        theirs: Option<String>,
    },
    /// No protocol version in common.
    NoCommonVersion,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownNode => f.write_str("unknown node ID"),
            Refusal::AddressNotAllowed { expected } => {
                f.write_str("address not allowed for this node ID; expected ")?;
                for (i, e) in expected.iter().enumerate() {
                    write!(f, "{}{e}", if i == 0 { "" } else { ", " })?;
                }
                Ok(())
            }
            Refusal::ClaimsOurId => f.write_str("the caller claims this server's own node ID"),
            Refusal::OtherCluster { theirs } => write!(f, "other cluster ({theirs:?})"),
            Refusal::NoCommonVersion => f.write_str("no protocol version in common"),
        }
    }
}

/// A server's side of identity: who it is and whom it accepts.
#[derive(Clone, Debug)]
pub struct ServerIdentity {
    /// This server's node ID.
    pub node: NodeId,
    /// The cluster it belongs to; a caller naming another is refused.
    pub cluster: Option<String>,
    /// Whom to accept.
    pub peers: PeerTable,
    /// Strict or open.
    pub mode: IdentityMode,
}

impl ServerIdentity {
    /// Decides about a HELLO from `observed`. Returns the version chosen.
    pub fn decide(&self, hello: &Hello, observed: CanonicalIp) -> Result<u32, Refusal> {
        if hello.node == self.node {
            return Err(Refusal::ClaimsOurId);
        }
        if let Some(ours) = &self.cluster
            && hello.cluster.as_ref() != Some(ours)
        {
            return Err(Refusal::OtherCluster {
                theirs: hello.cluster.clone(),
            });
        }
        let version = PROTOCOL_VERSIONS
            .iter()
            .rev()
            .find(|v| hello.versions.contains(v))
            .copied()
            .ok_or(Refusal::NoCommonVersion)?;
        match (self.mode, self.peers.addresses(&hello.node)) {
            (_, Some(allowed)) => {
                if allowed.iter().any(|a| a.matches(observed)) {
                    Ok(version)
                } else {
                    Err(Refusal::AddressNotAllowed {
                        expected: allowed.to_vec(),
                    })
                }
            }
            (IdentityMode::Open, None) => Ok(version),
            (IdentityMode::Strict, None) => Err(Refusal::UnknownNode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xdr::{from_bytes, to_bytes};
    use proptest::prelude::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn allowed(s: &str) -> AllowedAddress {
        s.parse().unwrap()
    }

    fn obs(s: &str) -> CanonicalIp {
        CanonicalIp::from(s.parse::<SocketAddr>().unwrap())
    }

    fn hello(node: &str) -> Hello {
        Hello {
            node: id(node),
            versions: vec![1],
            cluster: Some("c1".into()),
        }
    }

    fn server(mode: IdentityMode) -> ServerIdentity {
        let peers = PeerTable::new()
            .allow(id("a"), [allowed("192.0.2.10"), allowed("2001:db8:1::/64")])
            .allow(id("b"), [allowed("192.0.2.0/28")])
            .allow(id("ll"), [allowed("fe80::a%2")])
            .allow(id("ll-any"), [allowed("fe80::b")]);
        ServerIdentity {
            node: id("srv"),
            cluster: Some("c1".into()),
            peers,
            mode,
        }
    }

    #[test]
    fn node_ids_are_1_to_255_bytes() {
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("x".repeat(255)).is_ok());
        assert!(NodeId::new("x".repeat(256)).is_err());
    }

    #[test]
    fn allowed_address_text_round_trips() {
        for text in [
            "192.0.2.10",
            "192.0.2.0/24",
            "2001:db8::/48",
            "fe80::a%eth0",
            "fe80::a%3",
            "fe80::/64%eth0",
            "fe80::a",
        ] {
            assert_eq!(allowed(text).to_string(), text);
        }
        assert!("192.0.2.10%eth0".parse::<AllowedAddress>().is_err());
        assert!("nonsense".parse::<AllowedAddress>().is_err());
    }

    #[test]
    fn mapped_addresses_match_their_ipv4_entry() {
        let s = server(IdentityMode::Strict);
        assert_eq!(s.decide(&hello("a"), obs("[::ffff:192.0.2.10]:1")), Ok(1));
        assert_eq!(s.decide(&hello("a"), obs("192.0.2.10:1")), Ok(1));
    }

    #[test]
    fn network_edges_in_both_families() {
        let s = server(IdentityMode::Strict);
        assert_eq!(s.decide(&hello("b"), obs("192.0.2.15:1")), Ok(1));
        assert!(matches!(
            s.decide(&hello("b"), obs("192.0.2.16:1")),
            Err(Refusal::AddressNotAllowed { .. })
        ));
        assert_eq!(
            s.decide(&hello("a"), obs("[2001:db8:1:0:ffff:ffff:ffff:ffff]:1")),
            Ok(1)
        );
        assert!(matches!(
            s.decide(&hello("a"), obs("[2001:db8:2::]:1")),
            Err(Refusal::AddressNotAllowed { .. })
        ));
    }

    #[test]
    fn link_local_scopes() {
        let s = server(IdentityMode::Strict);
        assert_eq!(s.decide(&hello("ll"), obs("[fe80::a%2]:1")), Ok(1));
        assert!(
            s.decide(&hello("ll"), obs("[fe80::a%3]:1")).is_err(),
            "other interface"
        );
        assert_eq!(
            s.decide(&hello("ll-any"), obs("[fe80::b%7]:1")),
            Ok(1),
            "any scope"
        );
    }

    #[test]
    fn unresolved_scope_names_match_nothing_until_resolved() {
        let mut table =
            PeerTable::new().allow(id("n"), [allowed("fe80::a%eth0"), allowed("fe80::c%nope")]);
        let entry = &table.addresses(&id("n")).unwrap()[0];
        assert!(!entry.matches(obs("[fe80::a%2]:1")));
        let missing = table.resolve_scopes(|name| (name == "eth0").then_some(2));
        assert_eq!(missing, ["nope"]);
        assert!(table.addresses(&id("n")).unwrap()[0].matches(obs("[fe80::a%2]:1")));
    }

    #[test]
    fn refusals() {
        let s = server(IdentityMode::Strict);
        assert_eq!(
            s.decide(&hello("zz"), obs("192.0.2.10:1")),
            Err(Refusal::UnknownNode)
        );
        assert_eq!(
            s.decide(&hello("srv"), obs("192.0.2.10:1")),
            Err(Refusal::ClaimsOurId)
        );
        let mut other = hello("a");
        other.cluster = Some("c2".into());
        assert!(matches!(
            s.decide(&other, obs("192.0.2.10:1")),
            Err(Refusal::OtherCluster { .. })
        ));
        other.cluster = None;
        assert!(matches!(
            s.decide(&other, obs("192.0.2.10:1")),
            Err(Refusal::OtherCluster { .. })
        ));
        let mut old = hello("a");
        old.versions = vec![7];
        assert_eq!(
            s.decide(&old, obs("192.0.2.10:1")),
            Err(Refusal::NoCommonVersion)
        );
        // An impostor: a known ID from another address; the refusal lists what was expected.
        let Err(Refusal::AddressNotAllowed { expected }) =
            s.decide(&hello("a"), obs("192.0.2.9:1"))
        else {
            panic!("impostor accepted")
        };
        assert_eq!(
            expected,
            vec![allowed("192.0.2.10"), allowed("2001:db8:1::/64")]
        );
    }

    #[test]
    fn open_mode_accepts_unknown_ids_but_still_checks_known_ones() {
        let s = server(IdentityMode::Open);
        assert_eq!(s.decide(&hello("newcomer"), obs("198.51.100.1:1")), Ok(1));
        assert!(s.decide(&hello("a"), obs("198.51.100.1:1")).is_err());
    }

    #[test]
    fn admission_rejects_first_then_allows() {
        let adm = Admission {
            reject: vec!["192.0.2.8/29".parse().unwrap()],
            allow: vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
        };
        assert!(adm.admits(obs("192.0.2.1:1")));
        assert!(!adm.admits(obs("192.0.2.9:1")), "rejected though allowed");
        assert!(!adm.admits(obs("198.51.100.1:1")), "not allowed");
        assert!(adm.admits(obs("[::ffff:192.0.2.1]:1")), "mapped");
        assert!(adm.admits(obs("[2001:db8::5]:1")));
        assert!(Admission::default().admits(obs("203.0.113.1:1")));
    }

    #[test]
    fn handshake_messages_round_trip() {
        let h = hello("node-a");
        assert_eq!(from_bytes::<Hello>(&to_bytes(&h)).unwrap(), h);
        for observed in ["192.0.2.10:1023", "[2001:db8::10]:5", "[fe80::a%3]:24007"] {
            let r = HelloReply {
                node: id("srv"),
                observed: observed.parse().unwrap(),
                version: 1,
            };
            assert_eq!(from_bytes::<HelloReply>(&to_bytes(&r)).unwrap(), r);
        }
        let bytes = to_bytes(&HelloReply {
            node: id("s"),
            observed: "192.0.2.10:80".parse().unwrap(),
            version: 1,
        });
        assert_eq!(
            &bytes[..],
            b"\0\0\0\x01s\0\0\0\0\0\0\x04\0\0\0\x04\xc0\0\x02\x0a\0\0\0\0\0\0\0\x50\0\0\0\x01"
        );
    }

    proptest! {
        #[test]
        fn verdict_matches_a_plain_model(
            a in any::<[u8; 4]>(), prefix in 0u8..=32, o in any::<[u8; 4]>(), mapped in any::<bool>()
        ) {
            let net: IpNet = ipnet::Ipv4Net::new(Ipv4Addr::from(a), prefix).unwrap().into();
            let s = ServerIdentity {
                node: id("srv"),
                cluster: None,
                peers: PeerTable::new().allow(id("p"), [AllowedAddress::new(net, ScopeRule::Any)]),
                mode: IdentityMode::Strict,
            };
            let ip = Ipv4Addr::from(o);
            let observed = if mapped {
                CanonicalIp::new(IpAddr::V6(ip.to_ipv6_mapped()), 0)
            } else {
                CanonicalIp::new(IpAddr::V4(ip), 0)
            };
            let mut h = hello("p");
            h.cluster = None;
            let inside = prefix == 0 || (u32::from(ip) >> (32 - prefix)) == (u32::from(Ipv4Addr::from(a)) >> (32 - prefix));
            prop_assert_eq!(s.decide(&h, observed).is_ok(), inside);
        }

        #[test]
        fn hello_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = from_bytes::<Hello>(&bytes);
            let _ = from_bytes::<HelloReply>(&bytes);
        }
    }
}
