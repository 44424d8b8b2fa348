//! The handshake program: peerwire's HELLO, its XDR types and the node ID.
//!
//! # The program
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

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

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

/// The longest HELLO arguments in XDR: a node ID of [`MAX_ID_LEN`] bytes
/// (length word and padding), 16 versions, and a cluster ID of
/// [`MAX_ID_LEN`] bytes.
pub(crate) const MAX_HELLO_ARGS: usize =
    (4 + MAX_ID_LEN.next_multiple_of(4)) + (4 + 16 * 4) + (4 + 4 + MAX_ID_LEN.next_multiple_of(4));

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

fn decode_id(r: &mut XdrReader<'_>) -> Result<NodeId, DecodeError> {
    let at = r.clone();
    let text = r.string(MAX_ID_LEN as u32)?;
    NodeId::new(text).map_err(|e| {
        at.error(DecodeErrorKind::Invalid(if e.has_control_character() {
            "a node ID with a control character"
        } else {
            "empty node ID"
        }))
    })
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
