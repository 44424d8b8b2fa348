//! The types `peerwire::xdrgen` generates, decoded from arbitrary bytes:
//! every type of tests/xdrgen/rich.x (enums, typedefs of strings, opaque
//! and fixed arrays, structs with every field kind, a linked list, unions
//! on every kind of discriminant), through the committed golden file
//! tests/xdrgen/rich.rs (generated code needs only peerwire's runtime, not
//! the generator). The linked-list node types (`Entry`, `Group`) are held
//! as `Vec`s and have no codec of their own: they are decoded inside
//! `Listing` and `Grouplist`.
//!
//! Each type is decoded from the whole input with `from_bytes` and with
//! `from_shared`, which must agree. What decodes must re-encode to as many
//! bytes as it took (all of them) and decode again to an equal value (equal
//! encodings, for values holding a NaN float, which is not equal to itself).
//! Decoding never panics, and bounds are checked before anything is
//! allocated (libFuzzer's `-rss_limit_mb` catches one that is not).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerwire::proto::xdr::{XdrDecode, XdrEncode, from_bytes, from_shared, to_bytes};

#[allow(dead_code, clippy::all)]
mod rich {
    include!("../../tests/xdrgen/rich.rs");
}
use rich::*;

fn check<T: XdrDecode + XdrEncode + PartialEq + std::fmt::Debug>(data: &[u8], shared: &Bytes) {
    let copied = from_bytes::<T>(data);
    let sliced = from_shared::<T>(shared);
    let value = match (copied, sliced) {
        (Ok(copied), Ok(sliced)) => {
            assert_eq!(
                to_bytes(&copied),
                to_bytes(&sliced),
                "from_bytes and from_shared differ"
            );
            sliced
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "from_bytes and from_shared differ"
            );
            return;
        }
        (a, b) => panic!("from_bytes gave {a:?}, from_shared {b:?}"),
    };
    let encoded = to_bytes(&value);
    assert_eq!(
        encoded.len(),
        data.len(),
        "{value:?} re-encoded to another length"
    );
    let again = from_shared::<T>(&encoded)
        .unwrap_or_else(|e| panic!("{value:?} re-encoded does not decode: {e}"));
    assert_eq!(to_bytes(&again), encoded, "{value:?} decoded differently");
    #[allow(clippy::eq_op)]
    if value == value {
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    let shared = Bytes::copy_from_slice(data);
    check::<Color>(data, &shared);
    check::<Status>(data, &shared);
    check::<Name>(data, &shared);
    check::<Anyname>(data, &shared);
    check::<Blob>(data, &shared);
    check::<Tag>(data, &shared);
    check::<Cookie>(data, &shared);
    check::<Point>(data, &shared);
    check::<Aliases>(data, &shared);
    check::<Shapes>(data, &shared);
    check::<Grouplist>(data, &shared);
    check::<Listing>(data, &shared);
    check::<ByEnum>(data, &shared);
    check::<ByInt>(data, &shared);
    check::<ByUnsigned>(data, &shared);
    check::<ByBool>(data, &shared);
    check::<ByColor>(data, &shared);
    check::<ByIntList>(data, &shared);
});
