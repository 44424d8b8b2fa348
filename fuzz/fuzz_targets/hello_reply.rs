//! The client's verdict on a HELLO reply: one record's payload, to
//! `judge_hello_reply`, as the client sees the first record after its HELLO.
//!
//! Input: byte 0 is flags: bit 0 = over TLS, bit 1 = a certificate without
//! a CN (else its CN is "server"), bit 2 = the observed address must match,
//! bit 3 = our HELLO's XID is the record's own (its first 4 bytes, so the
//! checks past the XID are reached), else 0x5eed. The rest is the record.
//! The client means to reach "server" and is bound to 192.0.2.10:40000.
//!
//! Besides "no panic": an accepted reply names "server", over TLS the
//! certificate's CN is that, and `observed_differs` is exactly whether the
//! observed IP (canonical, IPv4-mapped as IPv4) is not 192.0.2.10, never set
//! when it must match; a wrong XID names both XIDs; the verdict is the same
//! when judged twice.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerwire::internals::{HelloExpected, HelloFault, judge_hello_reply};
use peerwire::peer::NodeId;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, record)) = data.split_first() else {
        return;
    };
    let tls = flags & 1 != 0;
    let cn = if flags & 2 != 0 { None } else { Some("server") };
    let strict = flags & 4 != 0;
    let xid = match (flags & 8 != 0, record.first_chunk::<4>()) {
        (true, Some(head)) => u32::from_be_bytes(*head),
        _ => 0x5eed,
    };
    let node = NodeId::new("server").expect("a valid node ID");
    let bound = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000);
    let expected = HelloExpected {
        xid,
        node: &node,
        certificate_cn: tls.then_some(cn),
        bound,
        observed_must_match: strict,
    };
    let record = Bytes::copy_from_slice(record);
    let verdict = judge_hello_reply(record.clone(), &expected);
    assert_eq!(verdict, judge_hello_reply(record, &expected));
    match verdict {
        Ok(accepted) => {
            assert_eq!(accepted.reply.node, node);
            if tls {
                assert_eq!(cn, Some(accepted.reply.node.as_str()));
            }
            let ip = match accepted.reply.observed.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            };
            assert_eq!(accepted.observed_differs, ip != bound.ip());
            assert!(!(strict && accepted.observed_differs));
        }
        Err(HelloFault::WrongXid { sent, got }) => {
            assert_eq!(sent, xid);
            assert_ne!(got, xid);
        }
        Err(HelloFault::CertificateCn { answered, cn: got }) => {
            assert!(tls);
            assert_eq!(answered, node);
            assert_eq!(got.as_deref(), cn);
            assert_ne!(cn, Some("server"));
        }
        Err(HelloFault::ObservedMismatch { bound: b, .. }) => {
            assert!(strict);
            assert_eq!(b, bound);
        }
        Err(_) => {}
    }
});
