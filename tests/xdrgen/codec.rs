//! The generated types on the wire: round trips of every type, RFC 4506
//! layout, and bounds, unknown values and long lists refused or decoded
//! before anything is allocated.

use bytes::Bytes;
use peerwire::proto::xdr::{XdrEncode, XdrString, from_bytes, from_shared, to_bytes};
use peerwire::proto::{DecodeError, DecodeErrorKind};

use super::{LIST_CAP, name, point, rich};
use crate::rich::*;

fn round_trip<T: XdrEncode + peerwire::proto::xdr::XdrDecode + PartialEq + std::fmt::Debug>(
    value: &T,
) -> Bytes {
    let wire = to_bytes(value);
    assert_eq!(&from_bytes::<T>(&wire).unwrap(), value, "from_bytes");
    assert_eq!(&from_shared::<T>(&wire).unwrap(), value, "from_shared");
    wire
}

fn shapes() -> Shapes {
    Shapes {
        fixed: [1, -2, 3, i32::MAX],
        upto: (0..16).collect(),
        any: vec![],
        digest: [7; 16],
        data: Bytes::from_static(b"abc"),
        label: XdrString::from(&b"\xff\xfe\x00"[..]),
        maybe: Some(point(9)),
        points: vec![point(1), point(2)],
        colors: [Color::Blue, Color::Red],
        names: vec![name("a"), name("")],
        tagged: Tag(*b"xyz"),
        next_cookie: Cookie(u64::MAX),
        r#type: -7,
        camel_case: 3,
    }
}

#[test]
fn every_type_round_trips() {
    assert_eq!(
        (MAXNAME, FROM_ELSE, NOT_SVC, MAXITEMS, MINUS_ONE, BIG),
        (32, 7, 1, 16, -1, 1 << 32)
    );
    round_trip(&Color::Green);
    round_trip(&Status::Io);
    round_trip(&point(4));
    round_trip(&Aliases {
        a_uint: 1,
        a_ulong: 2,
        a_ushort: 3,
        a_uchar: 4,
        a_uquad: u64::MAX,
        a_quad: i64::MIN,
        a_char: -1,
        a_short: -2,
        a_long: -3,
        a_unsigned_long: 5,
        a_unsigned_char: 6,
        a_unsigned_short: 7,
        a_unsigned: 8,
        a_hyper: -9,
        a_uhyper: 10,
        a_bool: true,
        a_point: point(3),
    });
    let mut s = shapes();
    round_trip(&s);
    s.maybe = None;
    round_trip(&s);
    round_trip(&Listing {
        entries: vec![
            rich::Entry {
                fileid: 1,
                filename: name("one"),
            },
            rich::Entry {
                fileid: 2,
                filename: name("two"),
            },
        ],
        groups: Grouplist(vec![Group { gr_name: name("g") }]),
        eof: true,
    });
    round_trip(&Listing {
        entries: vec![],
        groups: Grouplist(vec![]),
        eof: false,
    });
    for u in [
        ByEnum::Ok(point(1)),
        ByEnum::Noent,
        ByEnum::Default(Status::Io, -5),
    ] {
        round_trip(&u);
    }
    for u in [
        ByInt::Case1(name("x")),
        ByInt::Case2(name("y")),
        ByInt::CaseMinus1,
        ByInt::Maxitems(Blob(Bytes::from_static(b"blob"))),
    ] {
        round_trip(&u);
    }
    for u in [
        ByUnsigned::Case0,
        ByUnsigned::Case7(-1),
        ByUnsigned::Default(99),
    ] {
        round_trip(&u);
    }
    for u in [ByBool::True(Color::Green), ByBool::False] {
        round_trip(&u);
    }
    for u in [
        ByColor::Red,
        ByColor::Green(5),
        ByColor::Blue(XdrString::from("b")),
    ] {
        round_trip(&u);
    }
    round_trip(&ByIntList(vec![ByInt::CaseMinus1, ByInt::Case1(name("z"))]));
    assert_eq!((RICH_PROG, RICH_V1, RICH_V2), (0x20000042, 1, 2));
    assert_eq!(
        (
            RICH_ECHO.program,
            RICH_ECHO.version,
            RICH_ECHO.procedure,
            RICH_ECHO.name
        ),
        (RICH_PROG, RICH_V1, 1, "RICH_ECHO")
    );
    assert_eq!((RICH_NULL_V2.version, RICH_LOOKUP.procedure), (2, 1));
}

#[test]
fn the_wire_is_rfc_4506() {
    // A union: discriminant then arm; a bool arm; opaque padded to 4.
    assert_eq!(
        &to_bytes(&ByInt::Maxitems(Blob(Bytes::from_static(b"abcde"))))[..],
        &[
            0, 0, 0, 16, 0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0
        ][..]
    );
    // A list: a 1 before each node, a 0 at the end.
    let groups = Grouplist(vec![Group { gr_name: name("a") }]);
    assert_eq!(
        &to_bytes(&groups)[..],
        &[0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0][..]
    );
}

#[test]
fn strings_keep_any_bytes() {
    let raw: &[u8] = b"caf\xe9 \x00\xff";
    let wire = round_trip(&Name(XdrString::from(raw)));
    let decoded: Name = from_shared(&wire).unwrap();
    assert_eq!(decoded.0.as_bytes(), raw);
    assert!(decoded.0.to_str().is_err());
    assert_eq!(
        from_bytes::<Name>(&to_bytes(&name("ok")))
            .unwrap()
            .0
            .to_str(),
        Ok("ok")
    );
}

#[test]
fn opaque_of_every_size_round_trips_and_is_a_slice_of_the_record() {
    for len in [0usize, 1, 3, 4000] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let blob = Blob(Bytes::from(data.clone()));
        let wire = round_trip(&blob);
        assert_eq!(wire.len(), 4 + len.div_ceil(4) * 4);
        let decoded: Blob = from_shared(&wire).unwrap();
        assert_eq!(&decoded.0[..], &data[..]);
        if len > 0 {
            // Zero-copy: the decoded bytes live inside the record.
            let start = wire.as_ptr() as usize;
            let at = decoded.0.as_ptr() as usize;
            assert!(
                at >= start && at < start + wire.len(),
                "opaque of {len} was copied"
            );
        }
    }
}

fn kind(e: DecodeError) -> DecodeErrorKind {
    e.kind
}

#[test]
fn bounds_are_enforced_before_allocation() {
    // blob<4000>: 4001 is refused from the length alone (no data follows).
    let err = from_bytes::<Blob>(&4001u32.to_be_bytes()).unwrap_err();
    assert_eq!(
        kind(err),
        DecodeErrorKind::LengthOverBound {
            len: 4001,
            max: 4000
        }
    );
    // name = string<32>
    let err = from_bytes::<Name>(&33u32.to_be_bytes()).unwrap_err();
    assert_eq!(
        kind(err),
        DecodeErrorKind::LengthOverBound { len: 33, max: 32 }
    );
    // by_int_list = by_int<16>
    let err = from_bytes::<ByIntList>(&17u32.to_be_bytes()).unwrap_err();
    assert_eq!(
        kind(err),
        DecodeErrorKind::LengthOverBound { len: 17, max: 16 }
    );
    // shapes.upto: int<16>, after fixed[4]
    let mut wire = to_bytes(&shapes()).to_vec();
    wire[16..20].copy_from_slice(&17u32.to_be_bytes());
    let err = from_bytes::<Shapes>(&wire).unwrap_err();
    assert_eq!(
        kind(err),
        DecodeErrorKind::LengthOverBound { len: 17, max: 16 }
    );
}

#[test]
fn unknown_enum_values_and_union_arms_are_refused() {
    let err = from_bytes::<Color>(&1i32.to_be_bytes()).unwrap_err();
    assert_eq!(
        kind(err),
        DecodeErrorKind::Invalid("unknown value of enum color")
    );
    let err = from_bytes::<ByInt>(&3i32.to_be_bytes()).unwrap_err();
    assert_eq!(
        kind(err),
        DecodeErrorKind::Invalid("no arm of union by_int for this discriminant")
    );
    // by_color has no default: an unknown colour is refused by the enum.
    let err = from_bytes::<ByColor>(&5i32.to_be_bytes()).unwrap_err();
    assert_eq!(
        kind(err),
        DecodeErrorKind::Invalid("unknown value of enum color")
    );
}

/// A list of `n` groups named "g", encoded by hand.
fn group_list_wire(n: usize) -> Bytes {
    let mut wire = Vec::with_capacity(n * 12 + 4);
    for _ in 0..n {
        wire.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'g', 0, 0, 0]);
    }
    wire.extend_from_slice(&[0, 0, 0, 0]);
    Bytes::from(wire)
}

#[test]
fn a_long_linked_list_decodes_without_recursion() {
    // 100,000 nodes on a 2 MiB test thread: recursion would overflow.
    let wire = group_list_wire(100_000);
    let list: Grouplist = from_shared(&wire).unwrap();
    assert_eq!(list.0.len(), 100_000);
    assert_eq!(to_bytes(&list), wire);
    let at_cap: Grouplist = from_shared(&group_list_wire(LIST_CAP as usize)).unwrap();
    assert_eq!(at_cap.0.len(), LIST_CAP as usize);
}

#[test]
fn a_linked_list_longer_than_the_cap_is_refused() {
    let Err(err) = from_shared::<Grouplist>(&group_list_wire(LIST_CAP as usize + 1)) else {
        panic!("a list of {} nodes was accepted", LIST_CAP + 1);
    };
    assert_eq!(
        kind(err),
        DecodeErrorKind::LengthOverBound {
            len: LIST_CAP + 1,
            max: LIST_CAP
        }
    );
    assert_eq!(err.offset, u64::from(LIST_CAP) * 12);
}
