//! The handshake program: peerwire's HELLO, its XDR types and the node ID.
//!
//! # The program
//!
//! Program [`HANDSHAKE_PROGRAM`] (542136146, `0x2050_5752`), version 1.
//! Procedure 0 is NULL; procedure 1 is [`HELLO`]. Its XDR definition is
//! src/peer/hello.x; the types it generates are in [`wire`]
//! (`HelloArgs`, `ObservedAddr`, `HelloRes`), and this module gives their
//! meaning: [`Hello`] and [`HelloReply`] convert from them (`TryFrom`,
//! checking the node ID and the observed address) and to them (`From`).
//!
//! ```
//! use peerwire::peer::{Hello, NodeId};
//! use peerwire::peer::hello::wire::HelloArgs;
//! use peerwire::proto::xdr::{from_bytes, to_bytes};
//!
//! let hello = Hello {
//!     node: NodeId::new("node-a").unwrap(),
//!     versions: vec![1],
//!     cluster: None,
//! };
//! let bytes = to_bytes(&HelloArgs::from(&hello));
//! let back = Hello::try_from(from_bytes::<HelloArgs>(&bytes)?)?;
//! assert_eq!(back, hello);
//! # Ok::<(), peerwire::proto::DecodeError>(())
//! ```
//!
//! A refused HELLO gets MSG_DENIED / AUTH_ERROR: AUTH_REJECTEDCRED for an
//! unknown node ID, a known one from an address outside its list, a caller
//! claiming the server's own ID, or another cluster; AUTH_TOOWEAK for any
//! other call before HELLO succeeded. The server then closes the connection.
//!

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use bytes::Bytes;

use crate::proto::xdr::XdrString;
use crate::proto::{DecodeError, DecodeErrorKind};

use wire::{HelloArgs, HelloId, HelloRes, ObservedAddr};

/// The XDR types and numbers of src/peer/hello.x, as `peerwire::xdrgen`
/// (feature `xdrgen`) generates them: types and constants only, no client
/// or server, since the connection code drives HELLO itself.
pub mod wire {
    include!("generated/hello.rs");
}

pub use wire::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION};

/// The HELLO procedure's number ([`wire::HELLO`] is the typed procedure).
pub const HELLO: u32 = wire::HELLO.procedure;
/// The protocol versions this crate speaks.
pub const PROTOCOL_VERSIONS: &[u32] = &[1];
/// The bound on a node or cluster ID, in bytes (`MAX_ID_LEN` of hello.x).
pub const MAX_ID_LEN: usize = wire::MAX_ID_LEN as usize;

/// The longest HELLO arguments in XDR: a node ID of [`MAX_ID_LEN`] bytes
/// (length word and padding), [`wire::MAX_VERSIONS`] versions, and a
/// cluster ID of [`MAX_ID_LEN`] bytes.
pub(crate) const MAX_HELLO_ARGS: usize =
    string_len(MAX_ID_LEN) + (4 + 4 * wire::MAX_VERSIONS as usize) + (4 + string_len(MAX_ID_LEN));

/// The bytes of an XDR string or opaque of `len` bytes: its length word,
/// the bytes and their padding.
const fn string_len(len: usize) -> usize {
    4 + len.next_multiple_of(4)
}

/// A node's identity: 1 to 255 bytes of UTF-8, without control characters.
/// Cheap to clone (shared text): every call's context carries one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(std::sync::Arc<str>);

/// A node or cluster ID that is empty or longer than 255 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidId {
    len: usize,
    control: bool,
}

impl InvalidId {
    /// True when the ID was refused for a control character (its length
    /// was fine).
    pub fn has_control_character(&self) -> bool {
        self.control
    }
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.control {
            return f.write_str("an ID must not contain control characters");
        }
        write!(f, "an ID must be 1 to {MAX_ID_LEN} bytes, not {}", self.len)
    }
}

impl std::error::Error for InvalidId {}

impl NodeId {
    /// A node ID, if `id` is 1 to 255 bytes of UTF-8 without control
    /// characters. A node ID is printed in logs, verdicts and status
    /// tables; one with a newline could forge a log line, one with ESC
    /// drive an operator's terminal.
    pub fn new(id: impl Into<String>) -> Result<NodeId, InvalidId> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(InvalidId {
                len: id.len(),
                control: false,
            });
        }
        if id.chars().any(char::is_control) {
            return Err(InvalidId {
                len: id.len(),
                control: true,
            });
        }
        Ok(NodeId(id.into()))
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

/// A node ID from the wire, found at byte `at` of the arguments or results.
fn node_from_wire(id: HelloId, at: usize) -> Result<NodeId, DecodeError> {
    let error = |kind| DecodeError::new(kind, at as u64);
    let text =
        id.0.to_str()
            .map_err(|_| error(DecodeErrorKind::InvalidUtf8))?;
    NodeId::new(text).map_err(|e| {
        error(DecodeErrorKind::Invalid(if e.has_control_character() {
            "a node ID with a control character"
        } else {
            "empty node ID"
        }))
    })
}

fn id_to_wire(id: &str) -> HelloId {
    HelloId(XdrString::from(id))
}

impl From<&Hello> for HelloArgs {
    fn from(hello: &Hello) -> HelloArgs {
        HelloArgs {
            node_id: id_to_wire(hello.node.as_str()),
            versions: hello.versions.clone(),
            cluster_id: hello.cluster.as_deref().map(id_to_wire),
        }
    }
}

impl TryFrom<HelloArgs> for Hello {
    type Error = DecodeError;

    /// Checks the node ID (1 to 255 bytes of UTF-8 without control
    /// characters) and that the cluster ID is UTF-8. The error's offset is
    /// where the ID starts in the encoded arguments.
    fn try_from(args: HelloArgs) -> Result<Hello, DecodeError> {
        let cluster_at = string_len(args.node_id.0.len()) + 4 + 4 * args.versions.len() + 4;
        let node = node_from_wire(args.node_id, 0)?;
        let cluster = match args.cluster_id {
            None => None,
            Some(id) => Some(
                id.0.to_str()
                    .map_err(|_| DecodeError::new(DecodeErrorKind::InvalidUtf8, cluster_at as u64))?
                    .to_owned(),
            ),
        };
        Ok(Hello {
            node,
            versions: args.versions,
            cluster,
        })
    }
}

impl From<SocketAddr> for ObservedAddr {
    /// The family, the address's bytes, the scope of an IPv6 address (0 for
    /// IPv4) and the port.
    fn from(addr: SocketAddr) -> ObservedAddr {
        let (family, address, scope_id) = match addr {
            SocketAddr::V4(v4) => (4, Bytes::copy_from_slice(&v4.ip().octets()), 0),
            SocketAddr::V6(v6) => (6, Bytes::copy_from_slice(&v6.ip().octets()), v6.scope_id()),
        };
        ObservedAddr {
            family,
            address,
            scope_id,
            port: u32::from(addr.port()),
        }
    }
}

/// The socket address of an observed address found at byte `at` of the
/// results: the family must be 4 with 4 bytes or 6 with 16, the port at
/// most 65535.
fn observed_from_wire(o: &ObservedAddr, at: usize) -> Result<SocketAddr, DecodeError> {
    let error = |what| DecodeError::new(DecodeErrorKind::Invalid(what), at as u64);
    let port = u16::try_from(o.port).map_err(|_| error("port over 65535"))?;
    if let (4, Ok(octets)) = (o.family, <[u8; 4]>::try_from(&o.address[..])) {
        return Ok(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(octets),
            port,
        )));
    }
    if let (6, Ok(octets)) = (o.family, <[u8; 16]>::try_from(&o.address[..])) {
        let ip = Ipv6Addr::from(octets);
        return Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, o.scope_id)));
    }
    Err(error("address family is not 4 or 6 with 4 or 16 bytes"))
}

impl From<&HelloReply> for HelloRes {
    fn from(reply: &HelloReply) -> HelloRes {
        HelloRes {
            node_id: id_to_wire(reply.node.as_str()),
            observed: ObservedAddr::from(reply.observed),
            chosen: reply.version,
        }
    }
}

impl TryFrom<HelloRes> for HelloReply {
    type Error = DecodeError;

    /// Checks the node ID as for [`Hello`], and the observed address: a
    /// family other than 4 with 4 bytes or 6 with 16, or a port over 65535,
    /// is an error at the start of `observed`.
    fn try_from(res: HelloRes) -> Result<HelloReply, DecodeError> {
        let observed_at = string_len(res.node_id.0.len());
        let node = node_from_wire(res.node_id, 0)?;
        Ok(HelloReply {
            node,
            observed: observed_from_wire(&res.observed, observed_at)?,
            version: res.chosen,
        })
    }
}
