//! The `.x` compiler end to end: tests/xdrgen/rich.x (every construct the
//! compiler accepts) is regenerated and compared with the committed
//! tests/xdrgen/rich.rs, which this binary compiles through `include!` and
//! whose types it round-trips. The golden checks are here; the generated
//! types on the wire in xdrgen/codec.rs, the generated clients and servers
//! in xdrgen/rpc.rs, and property tests of every type in
//! xdrgen/properties.rs.
//!
//! After a deliberate change to the generator, rewrite the golden file
//! with `PEERWIRE_BLESS=1 cargo test --features xdrgen --test xdrgen`.

#![cfg(feature = "xdrgen")]

use std::path::Path;

use peerwire::proto::xdr::XdrString;
use peerwire::xdrgen::Builder;
use support::temp::TempDir;

mod support {
    #[path = "../support/temp.rs"]
    pub mod temp;
}

#[allow(dead_code)]
mod rich {
    include!("xdrgen/rich.rs");
}
use rich::*;

#[path = "xdrgen/codec.rs"]
mod codec;
#[path = "xdrgen/properties.rs"]
mod properties;
#[path = "xdrgen/rpc.rs"]
mod rpc;

/// The cap rich.rs was generated with.
const LIST_CAP: u32 = 200_000;

fn builder() -> Builder {
    Builder::new().max_list_len(LIST_CAP)
}

#[test]
fn generated_code_matches_the_golden_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/xdrgen");
    let rust = builder()
        .generate(&dir.join("rich.x"))
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = dir.join("rich.rs");
    if std::env::var_os("PEERWIRE_BLESS").is_some() {
        std::fs::write(&golden, &rust).unwrap();
    }
    let committed = std::fs::read_to_string(&golden).unwrap();
    assert!(
        rust == committed,
        "tests/xdrgen/rich.rs is not what rich.x generates; rerun with PEERWIRE_BLESS=1 after checking the difference"
    );
}

/// examples/kv.rs includes examples/kv/kv.rs so that it runs without the
/// `xdrgen` feature; this keeps that file what examples/kv.x generates.
#[test]
fn the_kv_example_is_what_its_x_file_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let rust = Builder::new()
        .generate(&dir.join("kv.x"))
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = dir.join("kv/kv.rs");
    if std::env::var_os("PEERWIRE_BLESS").is_some() {
        std::fs::write(&golden, &rust).unwrap();
    }
    let committed = std::fs::read_to_string(&golden).unwrap();
    assert!(
        rust == committed,
        "examples/kv/kv.rs is not what examples/kv.x generates; rerun with PEERWIRE_BLESS=1 after checking the difference"
    );
}

/// peerwire's own programs, each `.x` file with the generated Rust that
/// is committed next to it (the library and the peerd example cannot run
/// the generator when they are built) and the settings it is generated
/// with: the crate's own files name the runtime `crate`; HELLO, which the
/// connection code drives by hand, gets types and numbers only; portmap
/// and GF-DUMP, which peerwire only calls, get clients but no servers.
fn dogfood() -> [(&'static str, &'static str, Builder); 4] {
    let in_crate = || Builder::new().crate_path("crate");
    [
        (
            "src/peer/hello.x",
            "src/peer/generated/hello.rs",
            in_crate().clients(false).servers(false),
        ),
        (
            "src/programs/portmap.x",
            "src/programs/generated/portmap.rs",
            in_crate().servers(false),
        ),
        (
            "src/programs/gf_dump.x",
            "src/programs/generated/gf_dump.rs",
            in_crate().servers(false),
        ),
        (
            "examples/peerd/admin.x",
            "examples/peerd/admin.rs",
            Builder::new(),
        ),
    ]
}

#[test]
fn peerwires_own_programs_are_what_their_x_files_generate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (x, rs, builder) in dogfood() {
        let rust = builder
            .generate(&root.join(x))
            .unwrap_or_else(|e| panic!("{e}"));
        let golden = root.join(rs);
        if std::env::var_os("PEERWIRE_BLESS").is_some() {
            std::fs::write(&golden, &rust).unwrap();
        }
        let committed = std::fs::read_to_string(&golden).unwrap_or_default();
        if rust != committed {
            stale.push(format!("{rs} is not what {x} generates"));
        }
    }
    assert!(
        stale.is_empty(),
        "{}; rerun with PEERWIRE_BLESS=1 after checking the difference",
        stale.join("; ")
    );
}

#[test]
fn generate_to_writes_one_file_per_x_file() {
    let out = TempDir::new("xdrgen");
    builder()
        .file(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/xdrgen/rich.x"))
        .generate_to(&out)
        .unwrap();
    let written = std::fs::read_to_string(out.join("rich.rs")).unwrap();
    drop(out);
    assert!(written.contains("pub struct Shapes"));
}

fn name(s: &str) -> Name {
    Name(XdrString::from(s))
}

fn point(x: i32) -> Point {
    Point {
        x,
        y: -x,
        weight: 0.5,
        scale: -2.25,
    }
}
