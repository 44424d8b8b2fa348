//! Every type rich.x generates, from values proptest chooses: each
//! encodes to `encoded_len` bytes, decodes back (from a slice and from
//! shared `Bytes`) to the same value, and encodes again to the same bytes.

use bytes::Bytes;
use peerwire::proto::xdr::{XdrEncode, XdrString, from_bytes, from_shared, to_bytes};

use super::rich;
use crate::rich::*;
use peerwire::proto::xdr::{XdrDecode, encoded_len};
use proptest::collection::vec;
use proptest::prelude::*;
use std::fmt::Debug;

/// The round trip of `value`. Values are compared by their `Debug`
/// text, which is equal for equal values and for NaNs (whose bits the
/// wire comparison checks).
fn check<T: XdrEncode + XdrDecode + Debug>(value: &T) -> Result<(), TestCaseError> {
    let wire = to_bytes(value);
    prop_assert_eq!(encoded_len(value), wire.len());
    prop_assert_eq!(wire.len() % 4, 0);
    let back = from_bytes::<T>(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let shared = from_shared::<T>(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(format!("{back:?}"), format!("{value:?}"));
    prop_assert_eq!(format!("{shared:?}"), format!("{value:?}"));
    prop_assert_eq!(to_bytes(&back), wire);
    Ok(())
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

/// Any bytes, UTF-8 or not, as XDR strings are kept.
fn text(max: usize) -> impl Strategy<Value = XdrString> {
    vec(any::<u8>(), 0..=max).prop_map(XdrString::from)
}

fn any_color() -> impl Strategy<Value = Color> {
    prop_oneof![Just(Color::Red), Just(Color::Green), Just(Color::Blue)]
}

fn any_status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Ok), Just(Status::Noent), Just(Status::Io)]
}

fn any_name() -> impl Strategy<Value = Name> {
    text(32).prop_map(Name)
}

fn any_point() -> impl Strategy<Value = Point> {
    (any::<i32>(), any::<i32>(), any::<f64>(), any::<f32>()).prop_map(|(x, y, weight, scale)| {
        Point {
            x,
            y,
            weight,
            scale,
        }
    })
}

fn any_aliases() -> impl Strategy<Value = Aliases> {
    (
        (any::<[u32; 4]>(), any::<u64>(), any::<i64>()),
        any::<[i32; 3]>(),
        any::<[u32; 4]>(),
        (any::<i64>(), any::<u64>(), any::<bool>(), any_point()),
    )
        .prop_map(
            |((u, a_uquad, a_quad), i, w, (a_hyper, a_uhyper, a_bool, a_point))| Aliases {
                a_uint: u[0],
                a_ulong: u[1],
                a_ushort: u[2],
                a_uchar: u[3],
                a_uquad,
                a_quad,
                a_char: i[0],
                a_short: i[1],
                a_long: i[2],
                a_unsigned_long: w[0],
                a_unsigned_char: w[1],
                a_unsigned_short: w[2],
                a_unsigned: w[3],
                a_hyper,
                a_uhyper,
                a_bool,
                a_point,
            },
        )
}

fn any_shapes() -> impl Strategy<Value = Shapes> {
    (
        (
            any::<[i32; 4]>(),
            vec(any::<i32>(), 0..=16),
            vec(any::<i32>(), 0..40),
            any::<[u8; 16]>(),
            bytes(100),
            text(8),
        ),
        (
            proptest::option::of(any_point()),
            vec(any_point(), 0..=2),
            [any_color(), any_color()],
            vec(any_name(), 0..5),
            any::<[u8; 3]>(),
            any::<u64>(),
            any::<i32>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (fixed, upto, any, digest, data, label),
                (maybe, points, colors, names, tag, cookie, r#type, camel_case),
            )| Shapes {
                fixed,
                upto,
                any,
                digest,
                data,
                label,
                maybe,
                points,
                colors,
                names,
                tagged: Tag(tag),
                next_cookie: Cookie(cookie),
                r#type,
                camel_case,
            },
        )
}

fn any_listing() -> impl Strategy<Value = Listing> {
    (
        vec((any::<u32>(), any_name()), 0..50),
        vec(any_name(), 0..10),
        any::<bool>(),
    )
        .prop_map(|(entries, groups, eof)| Listing {
            entries: entries
                .into_iter()
                .map(|(fileid, filename)| rich::Entry { fileid, filename })
                .collect(),
            groups: Grouplist(
                groups
                    .into_iter()
                    .map(|gr_name| Group { gr_name })
                    .collect(),
            ),
            eof,
        })
}

/// A default arm carries a discriminant that no case names (one that a
/// case names would be read back as that case).
fn any_by_enum() -> impl Strategy<Value = ByEnum> {
    prop_oneof![
        any_point().prop_map(ByEnum::Ok),
        Just(ByEnum::Noent),
        any::<i32>().prop_map(|v| ByEnum::Default(Status::Io, v)),
    ]
}

fn any_by_int() -> impl Strategy<Value = ByInt> {
    prop_oneof![
        any_name().prop_map(ByInt::Case1),
        any_name().prop_map(ByInt::Case2),
        Just(ByInt::CaseMinus1),
        bytes(4000).prop_map(|b| ByInt::Maxitems(Blob(b))),
    ]
}

fn any_by_unsigned() -> impl Strategy<Value = ByUnsigned> {
    prop_oneof![
        Just(ByUnsigned::Case0),
        any::<i64>().prop_map(ByUnsigned::Case7),
        any::<u32>()
            .prop_filter("a discriminant no case names", |d| *d != 0 && *d != 7)
            .prop_map(ByUnsigned::Default),
    ]
}

fn any_by_bool() -> impl Strategy<Value = ByBool> {
    prop_oneof![any_color().prop_map(ByBool::True), Just(ByBool::False)]
}

fn any_by_color() -> impl Strategy<Value = ByColor> {
    prop_oneof![
        Just(ByColor::Red),
        any::<i32>().prop_map(ByColor::Green),
        text(64).prop_map(ByColor::Blue),
    ]
}

proptest! {
    #[test]
    fn enums_round_trip(c in any_color(), s in any_status()) {
        check(&c)?;
        check(&s)?;
    }

    #[test]
    fn typedefs_round_trip(
        n in any_name(), a in text(300), b in bytes(4000),
        t in any::<[u8; 3]>(), c in any::<u64>(),
    ) {
        check(&n)?;
        check(&Anyname(a))?;
        check(&Blob(b))?;
        check(&Tag(t))?;
        check(&Cookie(c))?;
    }

    #[test]
    fn points_round_trip(p in any_point()) {
        check(&p)?;
    }

    #[test]
    fn aliases_round_trip(a in any_aliases()) {
        check(&a)?;
    }

    #[test]
    fn shapes_round_trip(s in any_shapes()) {
        check(&s)?;
    }

    #[test]
    fn lists_round_trip(listing in any_listing()) {
        check(&listing)?;
        check(&listing.groups)?;
    }

    #[test]
    fn unions_round_trip(
        e in any_by_enum(), i in any_by_int(), u in any_by_unsigned(),
        b in any_by_bool(), c in any_by_color(),
    ) {
        check(&e)?;
        check(&i)?;
        check(&u)?;
        check(&b)?;
        check(&c)?;
    }

    #[test]
    fn union_arrays_round_trip(list in vec(any_by_int(), 0..=16)) {
        check(&ByIntList(list))?;
    }
}
