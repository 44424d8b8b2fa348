//! The portmapper, program 100000 version 2 (RFC 1833 §3), as served by
//! rpcbind on port 111 over TCP and UDP, for IPv4 and IPv6.
//!
//! | procedure | arguments | results |
//! |---|---|---|
//! | [`PROC_NULL`] 0 | none | none |
//! | [`PROC_SET`] 1 | [`Mapping`] | `bool` |
//! | [`PROC_UNSET`] 2 | [`Mapping`] (port ignored) | `bool` |
//! | [`PROC_GETPORT`] 3 | [`Mapping`] (port ignored) | `u32` port, 0 if none |
//! | [`PROC_DUMP`] 4 | none | [`MappingList`] |
//!
//! Listing what a portmapper has registered:
//!
//! ```no_run
//! use peerwire::programs::portmap::{self, MappingList};
//! use peerwire::{Client, ClientOptions};
//!
//! # async fn dump() -> Result<(), peerwire::Error> {
//! let client = Client::new(vec!["127.0.0.1:111".parse().unwrap()], ClientOptions::default()).unwrap();
//! let MappingList(mappings) = client
//!     .call_xdr(portmap::PROGRAM, portmap::VERSION, portmap::PROC_DUMP, &())
//!     .await?;
//! for m in &mappings {
//!     println!("{} v{} proto {} port {}", m.program, m.version, m.protocol, m.port);
//! }
//! # Ok(())
//! # }
//! ```

use crate::proto::DecodeError;
use crate::proto::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};

use super::{read_list, write_list};

/// The portmapper's program number.
pub const PROGRAM: u32 = 100_000;
/// The portmapper version this module describes. rpcbind also serves
/// versions 3 and 4 (RFC 1833's rpcbind protocol), which use other types.
pub const VERSION: u32 = 2;
/// The well-known port of the portmapper, TCP and UDP.
pub const PORT: u16 = 111;

/// NULL: no arguments, no results.
pub const PROC_NULL: u32 = 0;
/// SET: registers a [`Mapping`]; the result is a `bool`.
pub const PROC_SET: u32 = 1;
/// UNSET: removes the mappings of a program version (the protocol and port
/// of the [`Mapping`] are ignored); the result is a `bool`.
pub const PROC_UNSET: u32 = 2;
/// GETPORT: the port of the program version over the protocol of a
/// [`Mapping`] (its port is ignored); the result is a `u32`, 0 when none
/// is registered.
pub const PROC_GETPORT: u32 = 3;
/// DUMP: no arguments; the result is every registration, a [`MappingList`].
pub const PROC_DUMP: u32 = 4;
/// CALLIT: an indirect call through the portmapper (not typed here).
pub const PROC_CALLIT: u32 = 5;

/// The `protocol` of a TCP [`Mapping`] (`IPPROTO_TCP`).
pub const IPPROTO_TCP: u32 = 6;
/// The `protocol` of a UDP [`Mapping`] (`IPPROTO_UDP`).
pub const IPPROTO_UDP: u32 = 17;

/// One registration: `struct mapping { prog, vers, prot, port }`, four
/// unsigned ints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mapping {
    /// The program number.
    pub program: u32,
    /// The program version.
    pub version: u32,
    /// The transport: [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub protocol: u32,
    /// The port, as the wire carries it (an unsigned int).
    pub port: u32,
}

impl XdrEncode for Mapping {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.program);
        w.u32(self.version);
        w.u32(self.protocol);
        w.u32(self.port);
    }
}

impl XdrDecode for Mapping {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(Mapping {
            program: r.u32()?,
            version: r.u32()?,
            protocol: r.u32()?,
            port: r.u32()?,
        })
    }
}

/// Reads a `pmaplist` (`struct pmaplist { mapping map; pmaplist *next; }`,
/// behind an optional pointer): `bool 1, mapping, …, bool 0`. Iterative and
/// bounded by the input; see [`read_list`].
pub fn decode_pmaplist(r: &mut XdrReader<'_>) -> Result<Vec<Mapping>, DecodeError> {
    read_list(r, u32::MAX, Mapping::decode)
}

/// Writes `mappings` as a `pmaplist`.
pub fn encode_pmaplist(w: &mut XdrWriter<'_>, mappings: &[Mapping]) {
    write_list(w, mappings, |w, m| m.encode(w));
}

/// The results of [`PROC_DUMP`]: every registration, in the server's order.
/// Its XDR form is the linked `pmaplist` ([`decode_pmaplist`]), not an
/// array, which is why this is not a plain `Vec<Mapping>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MappingList(pub Vec<Mapping>);

impl MappingList {
    /// The port registered for `program` version `version` over `protocol`,
    /// as GETPORT would answer it; `None` when there is none (or when the
    /// registered value is not a valid port).
    pub fn port_of(&self, program: u32, version: u32, protocol: u32) -> Option<u16> {
        self.0
            .iter()
            .find(|m| m.program == program && m.version == version && m.protocol == protocol)
            .and_then(|m| u16::try_from(m.port).ok())
    }
}

impl From<MappingList> for Vec<Mapping> {
    fn from(list: MappingList) -> Vec<Mapping> {
        list.0
    }
}

impl XdrEncode for MappingList {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        encode_pmaplist(w, &self.0);
    }
}

impl XdrDecode for MappingList {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        decode_pmaplist(r).map(MappingList)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::{captured_call, captured_reply};
    use crate::proto::DecodeErrorKind;
    use crate::proto::xdr::{from_bytes, to_bytes};

    const DUMP_CALL: &[u8] = include_bytes!("../../tests/data/portmap_dump_call.bin");
    const DUMP_REPLY: &[u8] = include_bytes!("../../tests/data/rpcbind_dump_reply.bin");

    fn expected() -> Vec<Mapping> {
        // rpcbind registers itself: versions 4, 3, 2 over TCP, then over UDP.
        let mut out = Vec::new();
        for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
            for version in [4, 3, 2] {
                out.push(Mapping {
                    program: PROGRAM,
                    version,
                    protocol,
                    port: 111,
                });
            }
        }
        out
    }

    #[test]
    fn captured_dump_call_is_portmap_v2_dump_with_no_args() {
        let (numbers, args) = captured_call(DUMP_CALL);
        assert_eq!(numbers, (PROGRAM, VERSION, PROC_DUMP));
        assert!(args.is_empty());
        assert!(to_bytes(&()).is_empty());
    }

    #[test]
    fn captured_rpcbind_dump_reply_decodes() {
        let (xid, results) = captured_reply(DUMP_REPLY);
        assert_eq!(xid, 0x5057_0004);
        let list: MappingList = from_bytes(&results).unwrap();
        assert_eq!(list.0, expected());
        assert_eq!(list.port_of(PROGRAM, 2, IPPROTO_TCP), Some(PORT));
        assert_eq!(list.port_of(PROGRAM, 2, 99), None);
        // And encodes back to the very same bytes.
        assert_eq!(to_bytes(&list), results);
    }

    #[test]
    fn captured_reply_cut_short_is_an_error_not_a_shorter_list() {
        let (_, results) = captured_reply(DUMP_REPLY);
        for len in [0, 3, 4, 19, 20, results.len() - 4, results.len() - 1] {
            let err = from_bytes::<MappingList>(&results[..len]).unwrap_err();
            assert!(
                matches!(err.kind, DecodeErrorKind::UnexpectedEnd { .. }),
                "cut at {len}: {err}"
            );
        }
    }

    #[test]
    fn mapping_is_four_unsigned_ints() {
        let m = Mapping {
            program: 0x0102_0304,
            version: 5,
            protocol: IPPROTO_UDP,
            port: 0xffff_ffff,
        };
        let wire = to_bytes(&m);
        assert_eq!(
            &wire[..],
            [1, 2, 3, 4, 0, 0, 0, 5, 0, 0, 0, 17, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(from_bytes::<Mapping>(&wire).unwrap(), m);
        assert_eq!(MappingList(vec![m]).port_of(0x0102_0304, 5, 17), None);
    }

    #[test]
    fn empty_list_is_a_null_pointer() {
        assert_eq!(&to_bytes(&MappingList::default())[..], [0, 0, 0, 0]);
        assert_eq!(
            from_bytes::<MappingList>(&[0, 0, 0, 0]).unwrap(),
            MappingList::default()
        );
    }
}
