//! The portmapper, program 100000 version 2 (RFC 1833 §3), as served by
//! rpcbind on port 111 over TCP and UDP, for IPv4 and IPv6.
//!
//! Its XDR definition is src/programs/portmap.x; the types, the typed
//! procedures ([`PMAPPROC_DUMP`] and the others) and the typed client
//! [`PmapV2Client`] in this module are generated from it.
//!
//! | procedure | arguments | results |
//! |---|---|---|
//! | [`PMAPPROC_NULL`] 0 | none | none |
//! | [`PMAPPROC_SET`] 1 | [`Mapping`] | `bool` |
//! | [`PMAPPROC_UNSET`] 2 | [`Mapping`] (port ignored) | `bool` |
//! | [`PMAPPROC_GETPORT`] 3 | [`Mapping`] (port ignored) | `u32` port, 0 if none |
//! | [`PMAPPROC_DUMP`] 4 | none | [`MappingList`] |
//!
//! Listing what a portmapper has registered:
//!
//! ```no_run
//! use peerwire::programs::portmap::PmapV2Client;
//! use peerwire::{Client, ClientOptions};
//!
//! # async fn dump() -> Result<(), peerwire::Error> {
//! let client = Client::new(vec!["127.0.0.1:111".parse().unwrap()], ClientOptions::default()).unwrap();
//! let portmap = PmapV2Client::new(client);
//! for m in portmap.dump().await?.mappings() {
//!     println!("{} v{} proto {} port {}", m.prog, m.vers, m.prot, m.port);
//! }
//! # Ok(())
//! # }
//! ```

include!("generated/portmap.rs");

/// The portmapper's program number ([`PMAP_PROG`]).
pub const PROGRAM: u32 = PMAP_PROG;
/// The portmapper version this module describes ([`PMAP_V2`]). rpcbind
/// also serves versions 3 and 4 (RFC 1833's rpcbind protocol), which use
/// other types.
pub const VERSION: u32 = PMAP_V2;
/// The well-known port of the portmapper, TCP and UDP.
pub const PORT: u16 = 111;

impl MappingList {
    /// The registrations, in the server's order.
    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.0.iter().map(|entry| &entry.map)
    }

    /// The port registered for `program` version `version` over `protocol`,
    /// as GETPORT would answer it; `None` when there is none (or when the
    /// registered value is not a valid port).
    pub fn port_of(&self, program: u32, version: u32, protocol: u32) -> Option<u16> {
        self.mappings()
            .find(|m| m.prog == program && m.vers == version && m.prot == protocol)
            .and_then(|m| u16::try_from(m.port).ok())
    }
}

impl FromIterator<Mapping> for MappingList {
    fn from_iter<I: IntoIterator<Item = Mapping>>(mappings: I) -> MappingList {
        MappingList(
            mappings
                .into_iter()
                .map(|map| MappingEntry { map })
                .collect(),
        )
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
                    prog: PROGRAM,
                    vers: version,
                    prot: protocol,
                    port: 111,
                });
            }
        }
        out
    }

    #[test]
    fn captured_dump_call_is_portmap_v2_dump_with_no_args() {
        let (numbers, args) = captured_call(DUMP_CALL);
        assert_eq!(numbers, (PROGRAM, VERSION, PMAPPROC_DUMP.procedure));
        assert!(args.is_empty());
        assert!(to_bytes(&()).is_empty());
    }

    #[test]
    fn captured_rpcbind_dump_reply_decodes() {
        let (xid, results) = captured_reply(DUMP_REPLY);
        assert_eq!(xid, 0x5057_0004);
        let list: MappingList = from_bytes(&results).unwrap();
        assert_eq!(list.mappings().cloned().collect::<Vec<_>>(), expected());
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
            prog: 0x0102_0304,
            vers: 5,
            prot: IPPROTO_UDP,
            port: 0xffff_ffff,
        };
        let wire = to_bytes(&m);
        assert_eq!(
            &wire[..],
            [1, 2, 3, 4, 0, 0, 0, 5, 0, 0, 0, 17, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(from_bytes::<Mapping>(&wire).unwrap(), m);
        assert_eq!(
            MappingList::from_iter([m]).port_of(0x0102_0304, 5, 17),
            None
        );
    }

    #[test]
    fn empty_list_is_a_null_pointer() {
        assert_eq!(&to_bytes(&MappingList(Vec::new()))[..], [0, 0, 0, 0]);
        assert_eq!(
            from_bytes::<MappingList>(&[0, 0, 0, 0]).unwrap(),
            MappingList(Vec::new())
        );
    }
}
