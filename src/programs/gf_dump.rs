//! GlusterFS's GF-DUMP, program 123451501 version 1: what programs a
//! GlusterFS process serves, and a ping. Every glusterd serves it on port
//! 24007, and so does every brick process.
//!
//! Its XDR definition is src/programs/gf_dump.x, which follows
//! GlusterFS's `rpc-common-xdr.x` (`gf_dump_req`, `gf_dump_rsp`,
//! `gf_prog_detail`, `gf_common_rsp`; checked on the wire against
//! glusterd 10.3); the types, the typed procedures and the typed client
//! [`GfDumpV1Client`] in this module are generated from it.
//!
//! | procedure | arguments | results |
//! |---|---|---|
//! | [`GF_DUMP_NULL`] 0 | none | glusterd answers PROC_UNAVAIL |
//! | [`GF_DUMP_DUMP`] 1 | [`GfDumpRequest`] | [`GfDumpResponse`] |
//! | [`GF_DUMP_PING`] 2 | none | [`GfCommonResponse`] |
//!
//! ```no_run
//! use peerwire::programs::gf_dump::{GfDumpRequest, GfDumpV1Client};
//! use peerwire::{Client, ClientOptions};
//!
//! # async fn dump() -> Result<(), peerwire::Error> {
//! let client = Client::new(vec!["127.0.0.1:24007".parse().unwrap()], ClientOptions::default()).unwrap();
//! let dump = GfDumpV1Client::new(client).dump(&GfDumpRequest::default()).await?;
//! for p in &dump.programs {
//!     println!("{} {} v{}", p.progname, p.prognum, p.progver);
//! }
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;

include!("generated/gf_dump.rs");

/// GF-DUMP's program number ([`GF_DUMP`]).
pub const PROGRAM: u32 = GF_DUMP;
/// GF-DUMP's version ([`GF_DUMP_V1`]).
pub const VERSION: u32 = GF_DUMP_V1;

/// The `gfs_id` glusterd itself sends in its DUMP calls. The server ignores
/// the value.
pub const GLUSTERD_GFS_ID: u64 = 0xcafe;

/// The program number of "GlusterD svc peer", the program glusterds use
/// among themselves (probe, friend add, update).
pub const GLUSTERD_PEER_PROGRAM: u64 = 1_238_437;
/// The version of "GlusterD svc peer" that glusterd 10 serves.
pub const GLUSTERD_PEER_VERSION: u64 = 2;

impl Default for GfDumpRequest {
    /// The request glusterd sends: `gfs_id` = [`GLUSTERD_GFS_ID`].
    fn default() -> GfDumpRequest {
        GfDumpRequest {
            gfs_id: GLUSTERD_GFS_ID,
        }
    }
}

impl GfDumpResponse {
    /// The program with this number and version, if it is served.
    pub fn program(&self, number: u64, version: u64) -> Option<&GfProgram> {
        self.programs
            .iter()
            .find(|p| p.prognum == number && p.progver == version)
    }
}

impl Default for GfCommonResponse {
    /// Success: `op_ret` and `op_errno` 0, no `xdata` (what PING answers).
    fn default() -> GfCommonResponse {
        GfCommonResponse {
            op_ret: 0,
            op_errno: 0,
            xdata: Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::{captured_call, captured_reply};
    use crate::proto::DecodeErrorKind;
    use crate::proto::xdr::{from_bytes, to_bytes};

    const DUMP_CALL: &[u8] = include_bytes!("../../tests/data/glusterd_gf_dump_call.bin");
    const DUMP_REPLY: &[u8] = include_bytes!("../../tests/data/glusterd_gf_dump_reply.bin");
    const PING_CALL: &[u8] = include_bytes!("../../tests/data/glusterd_gf_ping_call.bin");
    const PING_REPLY: &[u8] = include_bytes!("../../tests/data/glusterd_gf_ping_reply.bin");

    /// glusterd 10.3's list, as in `/work/shared/WIRE.md`.
    const GLUSTERD_10_3: [(&str, u64, u64); 8] = [
        ("GF-DUMP", 123_451_501, 1),
        ("GlusterD svc peer", 1_238_437, 2),
        ("GlusterD svc cli read-only", 1_238_463, 2),
        ("GlusterD svc mgmt", 1_238_433, 2),
        ("GlusterD svc mgmt v3", 1_238_433, 3),
        ("Gluster Portmap", 34_123_456, 1),
        ("Gluster Handshake", 14_398_633, 2),
        ("Gluster MGMT Handshake", 1_239_873, 1),
    ];

    #[test]
    fn dump_request_encodes_as_glusterd_sends_it() {
        let (numbers, args) = captured_call(DUMP_CALL);
        assert_eq!(numbers, (PROGRAM, VERSION, GF_DUMP_DUMP.procedure));
        assert_eq!(to_bytes(&GfDumpRequest::default()), args);
        assert_eq!(
            from_bytes::<GfDumpRequest>(&args).unwrap(),
            GfDumpRequest { gfs_id: 0xcafe }
        );
    }

    #[test]
    fn captured_glusterd_dump_reply_decodes() {
        let (xid, results) = captured_reply(DUMP_REPLY);
        assert_eq!(xid, 0x5057_0101);
        let dump: GfDumpResponse = from_bytes(&results).unwrap();
        assert_eq!((dump.gfs_id, dump.op_ret, dump.op_errno), (0, 0, 0));
        let got: Vec<(&str, u64, u64)> = dump
            .programs
            .iter()
            .map(|p| (p.progname.to_str().unwrap(), p.prognum, p.progver))
            .collect();
        assert_eq!(got, GLUSTERD_10_3);
        let peer = dump
            .program(GLUSTERD_PEER_PROGRAM, GLUSTERD_PEER_VERSION)
            .unwrap();
        assert_eq!(peer.progname, "GlusterD svc peer");
        assert!(dump.program(u64::from(PROGRAM), 2).is_none());
        // And encodes back to the very same bytes.
        assert_eq!(to_bytes(&dump), results);
    }

    #[test]
    fn captured_dump_reply_cut_anywhere_is_an_error() {
        let (_, results) = captured_reply(DUMP_REPLY);
        for len in 0..results.len() {
            let err = from_bytes::<GfDumpResponse>(&results[..len]).unwrap_err();
            assert!(
                matches!(err.kind, DecodeErrorKind::UnexpectedEnd { .. }),
                "cut at {len}: {err}"
            );
        }
    }

    #[test]
    fn captured_ping_decodes() {
        let (numbers, args) = captured_call(PING_CALL);
        assert_eq!(numbers, (PROGRAM, VERSION, GF_DUMP_PING.procedure));
        assert!(args.is_empty());
        let (xid, results) = captured_reply(PING_REPLY);
        assert_eq!(xid, 0x5057_0102);
        let ping: GfCommonResponse = from_bytes(&results).unwrap();
        assert_eq!(ping, GfCommonResponse::default());
        assert_eq!(to_bytes(&ping), results);
    }

    #[test]
    fn common_response_carries_xdata_padded() {
        let rsp = GfCommonResponse {
            op_ret: -1,
            op_errno: 107,
            xdata: Bytes::from_static(b"abcde"),
        };
        let wire = to_bytes(&rsp);
        assert_eq!(
            &wire[..],
            b"\xff\xff\xff\xff\0\0\0\x6b\0\0\0\x05abcde\0\0\0"
        );
        assert_eq!(from_bytes::<GfCommonResponse>(&wire).unwrap(), rsp);
    }

    #[test]
    fn program_name_longer_than_the_input_is_refused() {
        // gfs_id, op_ret, op_errno, bool 1, then a name of 2^32-1 bytes.
        let mut wire = vec![0u8; 16];
        wire.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, b'x', 0, 0, 0]);
        let err = from_bytes::<GfDumpResponse>(&wire).unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::UnexpectedEnd { .. }));
        assert_eq!(err.offset, 24, "where the name's bytes should start");
    }
}
