//! Peer identity policy (pure): the peer table, admission lists and the
//! verdict on a HELLO. The HELLO messages and node IDs are wire types, in
//! [`crate::peer::hello`]; they are re-exported here.
//!
//! A peer is who its source address says it is. Every decision here takes
//! the address the server *observed*, normalised by [`CanonicalIp`]: an
//! IPv4-mapped IPv6 address becomes IPv4, and only a link-local address
//! keeps its scope (the receiving interface).
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
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::addr::{AddrParseError, CanonicalIp, Scope, canonical_net};

mod credentials;
pub mod hello;
pub use crate::sock::PeerCredentials;
pub use credentials::UnixAdmission;
pub use hello::{
    HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO, Hello, HelloReply, InvalidId, MAX_ID_LEN, NodeId,
    PROTOCOL_VERSIONS,
};

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
    /// network is link-local). An IPv4-mapped network is kept as its IPv4
    /// network, as observed addresses are (see [`canonical_net`]); a mapped
    /// network shorter than /96 is kept as written and matches no IPv4
    /// caller ([`AllowedAddress::from_str`] refuses it).
    pub fn new(net: IpNet, scope: ScopeRule) -> AllowedAddress {
        AllowedAddress {
            net: canonical_net(net).unwrap_or(net.trunc()),
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
        // A mapped network has its IPv4 form, or (shorter than /96) none.
        let Some(net) = canonical_net(net) else {
            return Err(bad());
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
    /// True when a connection from `observed` may be read. Networks are
    /// compared in canonical form, as the observed address is: an
    /// IPv4-mapped network stands for its IPv4 network.
    pub fn admits(&self, observed: CanonicalIp) -> bool {
        let ip = observed.ip();
        let contains = |net: &IpNet| canonical_net(*net).is_some_and(|net| net.contains(&ip));
        if self.reject.iter().any(contains) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(contains)
    }

    /// Checks the lists: an IPv4-mapped network shorter than /96 has no
    /// IPv4 form, and is an error rather than a rule that silently never
    /// matches. Returns the first such network.
    pub fn check(&self) -> Result<(), IpNet> {
        match self
            .reject
            .iter()
            .chain(&self.allow)
            .find(|net| canonical_net(**net).is_none())
        {
            Some(net) => Err(*net),
            None => Ok(()),
        }
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
    /// The claimed node ID is not a valid one: it has a control character.
    /// `claimed` is the caller's text as sent; it is printed escaped.
    InvalidNodeId {
        /// The claimed ID, raw (attacker-supplied text: escape it).
        claimed: String,
    },
    /// Over TLS: the claimed node ID is not the subject CN of the
    /// certificate the peer presented.
    CertificateCn {
        /// The certificate's CN (peer-supplied text: escape it).
        cn: Option<String>,
    },
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
            Refusal::InvalidNodeId { claimed } => write!(
                f,
                "the claimed node ID \"{}\" has a control character",
                claimed.escape_debug()
            ),
            Refusal::CertificateCn { cn } => write!(
                f,
                "the claimed node ID is not the TLS certificate's CN {}",
                crate::tls::Cn(cn)
            ),
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
    /// True when `node`, already identified, may still be connected from
    /// `observed` under this identity (after the peer table changed).
    pub fn still_allows(&self, node: &NodeId, observed: CanonicalIp) -> Result<(), Refusal> {
        if *node == self.node {
            return Err(Refusal::ClaimsOurId);
        }
        match (self.mode, self.peers.addresses(node)) {
            (_, Some(allowed)) if allowed.iter().any(|a| a.matches(observed)) => Ok(()),
            (_, Some(allowed)) => Err(Refusal::AddressNotAllowed {
                expected: allowed.to_vec(),
            }),
            (IdentityMode::Open, None) => Ok(()),
            (IdentityMode::Strict, None) => Err(Refusal::UnknownNode),
        }
    }

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
    use crate::peer::hello::wire::{HelloArgs, HelloId, HelloRes, ObservedAddr};
    use crate::proto::xdr::{from_bytes, to_bytes};
    use crate::proto::{DecodeError, DecodeErrorKind};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, SocketAddr};

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

    fn decode_hello(bytes: &[u8]) -> Result<Hello, DecodeError> {
        from_bytes::<HelloArgs>(bytes).and_then(Hello::try_from)
    }

    fn decode_reply(bytes: &[u8]) -> Result<HelloReply, DecodeError> {
        from_bytes::<HelloRes>(bytes).and_then(HelloReply::try_from)
    }

    #[test]
    fn handshake_messages_round_trip() {
        let h = hello("node-a");
        assert_eq!(decode_hello(&to_bytes(&HelloArgs::from(&h))).unwrap(), h);
        for observed in ["192.0.2.10:1023", "[2001:db8::10]:5", "[fe80::a%3]:24007"] {
            let r = HelloReply {
                node: id("srv"),
                observed: observed.parse().unwrap(),
                version: 1,
            };
            assert_eq!(decode_reply(&to_bytes(&HelloRes::from(&r))).unwrap(), r);
        }
        let bytes = to_bytes(&HelloRes::from(&HelloReply {
            node: id("s"),
            observed: "192.0.2.10:80".parse().unwrap(),
            version: 1,
        }));
        assert_eq!(
            &bytes[..],
            b"\0\0\0\x01s\0\0\0\0\0\0\x04\0\0\0\x04\xc0\0\x02\x0a\0\0\0\0\0\0\0\x50\0\0\0\x01"
        );
    }

    #[test]
    fn handshake_messages_with_bad_ids_or_addresses_are_errors_at_their_field() {
        // HELLO with a node ID holding a newline, or an empty one.
        let args = |node: &[u8], cluster: Option<&[u8]>| {
            to_bytes(&HelloArgs {
                node_id: HelloId(node.into()),
                versions: vec![1, 2],
                cluster_id: cluster.map(|c| HelloId(c.into())),
            })
        };
        let e = decode_hello(&args(b"a\nb", None)).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(
                DecodeErrorKind::Invalid("a node ID with a control character"),
                0
            )
        );
        let e = decode_hello(&args(b"", None)).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Invalid("empty node ID"));
        // A cluster ID that is not UTF-8, after the 8-byte node ID, the
        // versions (12 bytes) and the optional's bool.
        let e = decode_hello(&args(b"node", Some(b"\xff"))).unwrap_err();
        assert_eq!(e, DecodeError::new(DecodeErrorKind::InvalidUtf8, 24));
        // HELLO results whose observed address (after the 8-byte node ID)
        // is wrong.
        let res = |family, address: &[u8], port| {
            to_bytes(&HelloRes {
                node_id: HelloId("srv".into()),
                observed: ObservedAddr {
                    family,
                    address: bytes::Bytes::copy_from_slice(address),
                    scope_id: 0,
                    port,
                },
                chosen: 1,
            })
        };
        let invalid = |what| DecodeError::new(DecodeErrorKind::Invalid(what), 8);
        assert_eq!(
            decode_reply(&res(4, &[127, 0, 0, 1], 65_536)).unwrap_err(),
            invalid("port over 65535")
        );
        let bad_family = invalid("address family is not 4 or 6 with 4 or 16 bytes");
        for (family, len) in [(4, 16), (6, 4), (5, 4), (4, 3)] {
            let address = vec![1; len];
            assert_eq!(
                decode_reply(&res(family, &address, 80)).unwrap_err(),
                bad_family
            );
        }
        assert!(decode_reply(&res(4, &[127, 0, 0, 1], 65_535)).is_ok());
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
            let _ = decode_hello(&bytes);
            let _ = decode_reply(&bytes);
        }
    }

    #[test]
    fn mapped_networks_are_compared_as_their_ipv4_networks() {
        let observed = |s: &str| CanonicalIp::from(s.parse::<SocketAddr>().unwrap());
        let admission = Admission {
            reject: vec!["::ffff:127.0.0.0/104".parse().unwrap()],
            allow: vec![],
        };
        assert!(admission.check().is_ok());
        assert!(!admission.admits(observed("127.0.0.2:1")));
        assert!(!admission.admits(observed("[::ffff:127.0.0.2]:1")));
        assert!(admission.admits(observed("192.0.2.1:1")));

        let entry: AllowedAddress = "::ffff:192.0.2.20".parse().unwrap();
        assert_eq!(entry.to_string(), "192.0.2.20", "shown in IPv4 form");
        assert!(entry.matches(observed("192.0.2.20:5")));
        assert!(entry.matches(observed("[::ffff:192.0.2.20]:5")));
        let net: AllowedAddress = "::ffff:192.0.2.0/120".parse().unwrap();
        assert_eq!(net.to_string(), "192.0.2.0/24");

        assert!("::ffff:0.0.0.0/80".parse::<AllowedAddress>().is_err());
        let too_short = Admission {
            reject: vec![],
            allow: vec!["::ffff:0.0.0.0/80".parse().unwrap()],
        };
        assert!(too_short.check().is_err());
        // Plain IPv6 networks are untouched.
        let v6: AllowedAddress = "2001:db8::/48".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/48");
    }
}
