//! GlusterFS's GF-DUMP, program 123451501 version 1: what programs a
//! GlusterFS process serves, and a ping. Every glusterd serves it on port
//! 24007, and so does every brick process.
//!
//! | procedure | arguments | results |
//! |---|---|---|
//! | [`PROC_NULL`] 0 | none | glusterd answers PROC_UNAVAIL |
//! | [`PROC_DUMP`] 1 | [`GfDumpRequest`] | [`GfDumpResponse`] |
//! | [`PROC_PING`] 2 | none | [`GfCommonResponse`] |
//!
//! The types follow GlusterFS's `rpc-common-xdr.x` (`gf_dump_req`,
//! `gf_dump_rsp`, `gf_prog_detail`, `gf_common_rsp`); checked on the wire
//! against glusterd 10.3.
//!
//! ```no_run
//! use peerwire::programs::gf_dump::{self, GfDumpRequest, GfDumpResponse};
//! use peerwire::{Client, ClientOptions};
//!
//! # async fn dump() -> Result<(), peerwire::Error> {
//! let client = Client::new(vec!["127.0.0.1:24007".parse().unwrap()], ClientOptions::default()).unwrap();
//! let dump: GfDumpResponse = client
//!     .call_xdr(gf_dump::PROGRAM, gf_dump::VERSION, gf_dump::PROC_DUMP, &GfDumpRequest::default())
//!     .await?;
//! for p in &dump.programs {
//!     println!("{:?} {} v{}", p.name, p.number, p.version);
//! }
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;

use crate::proto::DecodeError;
use crate::proto::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};

use super::{read_list, write_list};

/// GF-DUMP's program number.
pub const PROGRAM: u32 = 123_451_501;
/// GF-DUMP's version.
pub const VERSION: u32 = 1;

/// NULL. glusterd does not implement it and answers PROC_UNAVAIL, which
/// still proves it is up.
pub const PROC_NULL: u32 = 0;
/// DUMP: [`GfDumpRequest`] in, [`GfDumpResponse`] out.
pub const PROC_DUMP: u32 = 1;
/// PING: no arguments; [`GfCommonResponse`] out.
pub const PROC_PING: u32 = 2;

/// The `gfs_id` glusterd itself sends in its DUMP calls. The server ignores
/// the value.
pub const GLUSTERD_GFS_ID: u64 = 0xcafe;

/// The program number of "GlusterD svc peer", the program glusterds use
/// among themselves (probe, friend add, update).
pub const GLUSTERD_PEER_PROGRAM: u64 = 1_238_437;
/// The version of "GlusterD svc peer" that glusterd 10 serves.
pub const GLUSTERD_PEER_VERSION: u64 = 2;

/// The arguments of [`PROC_DUMP`] (`gf_dump_req`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GfDumpRequest {
    /// An identifier of the caller; ignored by the server.
    pub gfs_id: u64,
}

impl Default for GfDumpRequest {
    /// The request glusterd sends: `gfs_id` = [`GLUSTERD_GFS_ID`].
    fn default() -> GfDumpRequest {
        GfDumpRequest {
            gfs_id: GLUSTERD_GFS_ID,
        }
    }
}

impl XdrEncode for GfDumpRequest {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u64(self.gfs_id);
    }
}

impl XdrDecode for GfDumpRequest {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(GfDumpRequest { gfs_id: r.u64()? })
    }
}

/// One program a GlusterFS process serves (`gf_prog_detail`, without its
/// `next` pointer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GfProgram {
    /// The program's name, e.g. `"GlusterD svc peer"`.
    pub name: String,
    /// The program number.
    pub number: u64,
    /// The version.
    pub version: u64,
}

impl XdrEncode for GfProgram {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.string(&self.name);
        w.u64(self.number);
        w.u64(self.version);
    }
}

impl XdrDecode for GfProgram {
    /// `string progname<>` (bounded by the input), `u_quad_t prognum`,
    /// `u_quad_t progver`.
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(GfProgram {
            name: r.string(u32::MAX)?.to_owned(),
            number: r.u64()?,
            version: r.u64()?,
        })
    }
}

/// The results of [`PROC_DUMP`] (`gf_dump_rsp`).
///
/// On the wire the programs are a linked list (`gf_prog_detail *prog`):
/// `bool 1, program, …, bool 0`; see [`read_list`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GfDumpResponse {
    /// An identifier; glusterd sends 0.
    pub gfs_id: u64,
    /// 0 on success, -1 on failure.
    pub op_ret: i32,
    /// An errno when `op_ret` is -1.
    pub op_errno: i32,
    /// The programs served, in the server's order.
    pub programs: Vec<GfProgram>,
}

impl GfDumpResponse {
    /// The program with this number and version, if it is served.
    pub fn program(&self, number: u64, version: u64) -> Option<&GfProgram> {
        self.programs
            .iter()
            .find(|p| p.number == number && p.version == version)
    }
}

impl XdrEncode for GfDumpResponse {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u64(self.gfs_id);
        w.i32(self.op_ret);
        w.i32(self.op_errno);
        write_list(w, &self.programs, |w, p| p.encode(w));
    }
}

impl XdrDecode for GfDumpResponse {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(GfDumpResponse {
            gfs_id: r.u64()?,
            op_ret: r.i32()?,
            op_errno: r.i32()?,
            programs: read_list(r, u32::MAX, GfProgram::decode)?,
        })
    }
}

/// The results of [`PROC_PING`], and of many GlusterFS procedures
/// (`gf_common_rsp`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GfCommonResponse {
    /// 0 on success, -1 on failure.
    pub op_ret: i32,
    /// An errno when `op_ret` is -1.
    pub op_errno: i32,
    /// Extra data (a serialized GlusterFS dictionary), usually empty.
    pub xdata: Bytes,
}

impl XdrEncode for GfCommonResponse {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.i32(self.op_ret);
        w.i32(self.op_errno);
        w.opaque(&self.xdata);
    }
}

impl XdrDecode for GfCommonResponse {
    /// `int op_ret`, `int op_errno`, `opaque xdata<>` (bounded by the input).
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(GfCommonResponse {
            op_ret: r.i32()?,
            op_errno: r.i32()?,
            xdata: Bytes::decode(r)?,
        })
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
        assert_eq!(numbers, (PROGRAM, VERSION, PROC_DUMP));
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
            .map(|p| (p.name.as_str(), p.number, p.version))
            .collect();
        assert_eq!(got, GLUSTERD_10_3);
        let peer = dump
            .program(GLUSTERD_PEER_PROGRAM, GLUSTERD_PEER_VERSION)
            .unwrap();
        assert_eq!(peer.name, "GlusterD svc peer");
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
        assert_eq!(numbers, (PROGRAM, VERSION, PROC_PING));
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
