//! The `.x` compiler end to end: tests/xdrgen/rich.x (every construct the
//! compiler accepts) is regenerated and compared with the committed
//! tests/xdrgen/rich.rs, which this binary compiles through `include!` and
//! whose types it round-trips.
//!
//! After a deliberate change to the generator, rewrite the golden file
//! with `PEERWIRE_BLESS=1 cargo test --features xdrgen --test xdrgen`.

#![cfg(feature = "xdrgen")]

use std::future::Future;
use std::path::Path;

use bytes::Bytes;
use peerwire::proto::xdr::{XdrEncode, XdrString, from_bytes, from_shared, to_bytes};
use peerwire::proto::{DecodeError, DecodeErrorKind};
use peerwire::xdrgen::Builder;

#[allow(dead_code)]
mod rich {
    include!("xdrgen/rich.rs");
}
use rich::*;

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
            "src/programs/hello.x",
            "src/programs/generated/hello.rs",
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
    let out = std::env::temp_dir().join(format!("peerwire-xdrgen-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    builder()
        .file(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/xdrgen/rich.x"))
        .generate_to(&out)
        .unwrap();
    let written = std::fs::read_to_string(out.join("rich.rs")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    assert!(written.contains("pub struct Shapes"));
}

fn round_trip<T: XdrEncode + peerwire::proto::xdr::XdrDecode + PartialEq + std::fmt::Debug>(
    value: &T,
) -> Bytes {
    let wire = to_bytes(value);
    assert_eq!(&from_bytes::<T>(&wire).unwrap(), value, "from_bytes");
    assert_eq!(&from_shared::<T>(&wire).unwrap(), value, "from_shared");
    wire
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

/// RICH_PROG version 1 by hand over raw bytes: ECHO returns its name,
/// LIST a fixed listing; what the generated client must speak.
async fn rich_v1(
    _ctx: peerwire::CallContext,
    procedure: u32,
    args: Bytes,
) -> Result<Bytes, peerwire::ProcError> {
    match procedure {
        0 => Ok(Bytes::new()),
        1 => {
            let name: Name = from_shared(&args).map_err(|_| peerwire::ProcError::GarbageArgs)?;
            Ok(to_bytes(&name))
        }
        2 => {
            let cookie: Cookie =
                from_shared(&args).map_err(|_| peerwire::ProcError::GarbageArgs)?;
            Ok(to_bytes(&Listing {
                entries: vec![rich::Entry {
                    fileid: cookie.0 as u32,
                    filename: name("f"),
                }],
                groups: Grouplist(vec![]),
                eof: true,
            }))
        }
        _ => Err(peerwire::ProcError::ProcUnavail),
    }
}

#[tokio::test]
async fn the_generated_client_calls_each_procedure() {
    use peerwire::{Client, ClientOptions, Endpoint, Server, ServerOptions};
    let server = Server::new(ServerOptions::default())
        .service(RICH_PROG, RICH_V1, rich_v1)
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let address = Endpoint::from(server.local_addrs()[0]);
    let client = RichV1Client::new(Client::new(vec![address], ClientOptions::default()).unwrap());
    client.null().await.unwrap();
    let raw: &[u8] = b"\xffname";
    let echoed = client.echo(&Name(XdrString::from(raw))).await.unwrap();
    assert_eq!(echoed.0.as_bytes(), raw);
    let listing = client.list(&Cookie(7)).await.unwrap();
    assert_eq!(listing.entries[0].fileid, 7);
    assert!(listing.eof);
    server.shutdown().await;
}

/// RICH_PROG through the generated server traits: ECHO returns its name,
/// LIST a listing named after the caller's address as the server observed
/// it, LOOKUP finds points with x >= 0, COUNT adds one.
struct Rich;

impl RichV1Server for Rich {
    async fn echo(
        &self,
        _ctx: &peerwire::CallContext,
        args: Name,
    ) -> Result<Name, peerwire::ProcError> {
        Ok(args)
    }

    async fn list(
        &self,
        ctx: &peerwire::CallContext,
        args: Cookie,
    ) -> Result<Listing, peerwire::ProcError> {
        // Cookie u64::MAX: a file name over name's bound of 32 bytes.
        let filename = match args.0 {
            u64::MAX => name(&"n".repeat(33)),
            _ => name(&ctx.observed.ip().to_string()),
        };
        Ok(Listing {
            entries: vec![rich::Entry {
                fileid: args.0 as u32,
                filename,
            }],
            groups: Grouplist(vec![rich::Group { gr_name: name("g") }]),
            eof: true,
        })
    }
}

impl RichV2Server for Rich {
    async fn lookup(
        &self,
        _ctx: &peerwire::CallContext,
        args: Point,
    ) -> Result<ByEnum, peerwire::ProcError> {
        Ok(if args.x >= 0 {
            ByEnum::Ok(args)
        } else {
            ByEnum::Noent
        })
    }

    fn count(
        &self,
        _ctx: &peerwire::CallContext,
        args: i32,
    ) -> impl Future<Output = Result<i32, peerwire::ProcError>> + Send {
        std::future::ready(args.checked_add(1).ok_or(peerwire::ProcError::SystemErr))
    }

    async fn ping(&self, _ctx: &peerwire::CallContext) -> Result<(), peerwire::ProcError> {
        Ok(())
    }
}

/// A server of the generated programs on 127.0.0.1 (`versions` of them)
/// and a client whose source is 127.0.0.2.
fn rich_server(both: bool) -> (peerwire::RunningServer, peerwire::Client) {
    use peerwire::{
        Client, ClientOptions, ConnectOptions, Endpoint, Server, ServerOptions, Sources,
    };
    let mut server = Server::new(ServerOptions::default()).program(RichV1Program(Rich));
    if both {
        server = server.program(RichV2Program(Rich));
    }
    let server = server.serve(&["127.0.0.1:0".parse().unwrap()]).unwrap();
    let options = ClientOptions {
        connect: ConnectOptions {
            sources: Sources::new().with("127.0.0.2".parse::<std::net::IpAddr>().unwrap()),
            ..ConnectOptions::default()
        },
        ..ClientOptions::default()
    };
    let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], options).unwrap();
    (server, client)
}

fn rejected(e: peerwire::Error) -> peerwire::CallStatus {
    match e {
        peerwire::Error::CallRejected { status, .. } => status,
        e => panic!("expected a rejected call, got {e:?}"),
    }
}

/// Items over their bounds are never sent: arguments are refused before
/// the call goes out (`Error::BadArgs`), and results are answered
/// SYSTEM_ERR, as rpcgen's C servers answer results they cannot encode.
/// The connection serves on after each.
#[tokio::test]
async fn items_over_their_bounds_are_not_sent_in_either_direction() {
    let (server, client) = rich_server(false);
    let v1 = RichV1Client::new(client);
    match v1.echo(&name(&"n".repeat(33))).await {
        Err(peerwire::Error::BadArgs { error, .. }) => {
            assert_eq!((error.len, error.max), (33, MAXNAME));
        }
        other => panic!("a name of 33 bytes is refused before it is sent, got {other:?}"),
    }
    assert_eq!(
        v1.echo(&name(&"n".repeat(32))).await.unwrap(),
        name(&"n".repeat(32))
    );
    assert_eq!(
        rejected(v1.list(&Cookie(u64::MAX)).await.unwrap_err()),
        peerwire::CallStatus::SystemErr
    );
    assert!(v1.list(&Cookie(1)).await.unwrap().eof);
    let too_long = ByIntList((0..17).map(|_| ByInt::CaseMinus1).collect());
    assert_eq!(
        peerwire::proto::xdr::check_bounds(&too_long),
        Err(peerwire::proto::xdr::EncodeError {
            len: 17,
            max: MAXITEMS
        })
    );
    let list = vec![
        rich::Entry {
            fileid: 1,
            filename: name("")
        };
        LIST_CAP as usize + 1
    ];
    let listing = Listing {
        entries: list,
        groups: Grouplist(vec![]),
        eof: true,
    };
    assert_eq!(
        peerwire::proto::xdr::check_bounds(&listing),
        Err(peerwire::proto::xdr::EncodeError {
            len: LIST_CAP as usize + 1,
            max: LIST_CAP
        })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_generated_client_calls_the_generated_server_for_each_procedure() {
    let (server, client) = rich_server(true);
    let v1 = RichV1Client::new(client.clone());
    let v2 = RichV2Client::new(client);
    v1.null().await.unwrap();
    let raw: &[u8] = b"\xffname";
    assert_eq!(
        v1.echo(&Name(XdrString::from(raw)))
            .await
            .unwrap()
            .0
            .as_bytes(),
        raw
    );
    let listing = v1.list(&Cookie(7)).await.unwrap();
    assert_eq!(listing.entries[0].fileid, 7);
    assert_eq!(listing.groups.0[0].gr_name, name("g"));
    assert!(listing.eof);
    v2.null().await.unwrap();
    assert_eq!(v2.lookup(&point(3)).await.unwrap(), ByEnum::Ok(point(3)));
    assert_eq!(v2.lookup(&point(-3)).await.unwrap(), ByEnum::Noent);
    assert_eq!(v2.count(&41).await.unwrap(), 42);
    v2.ping().await.unwrap();
    assert_eq!(
        rejected(v2.count(&i32::MAX).await.unwrap_err()),
        peerwire::CallStatus::SystemErr
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_generated_procedure_reads_the_observed_address_from_its_context() {
    let (server, client) = rich_server(false);
    let listing = RichV1Client::new(client).list(&Cookie(1)).await.unwrap();
    assert_eq!(listing.entries[0].filename, name("127.0.0.2"));
    server.shutdown().await;
}

#[tokio::test]
async fn the_generated_server_answers_proc_unavail_for_an_unknown_procedure() {
    let (server, client) = rich_server(true);
    let e = client
        .call(RICH_PROG, RICH_V1, 3, Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(rejected(e), peerwire::CallStatus::ProcUnavail);
    let e = client
        .call(RICH_PROG, RICH_V2, 99, Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(rejected(e), peerwire::CallStatus::ProcUnavail);
    server.shutdown().await;
}

#[tokio::test]
async fn the_generated_server_answers_garbage_args_for_bad_arguments() {
    let (server, client) = rich_server(true);
    // A name over its bound of 32 bytes.
    let long = to_bytes(&XdrString::from(&[b'n'; 33][..]));
    let e = client.call(RICH_PROG, RICH_V1, 1, long).await.unwrap_err();
    assert_eq!(rejected(e), peerwire::CallStatus::GarbageArgs);
    // A point cut short, and an int with bytes left over.
    let e = client
        .call(RICH_PROG, RICH_V2, 1, Bytes::from_static(&[0; 8]))
        .await
        .unwrap_err();
    assert_eq!(rejected(e), peerwire::CallStatus::GarbageArgs);
    let e = client
        .call(RICH_PROG, RICH_V2, 2, Bytes::from_static(&[0; 8]))
        .await
        .unwrap_err();
    assert_eq!(rejected(e), peerwire::CallStatus::GarbageArgs);
    // Arguments to a procedure that takes none.
    let e = client
        .call(RICH_PROG, RICH_V2, 3, Bytes::from_static(&[0; 4]))
        .await
        .unwrap_err();
    assert_eq!(rejected(e), peerwire::CallStatus::GarbageArgs);
    // The connection goes on.
    assert_eq!(RichV2Client::new(client).count(&1).await.unwrap(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn the_generated_server_answers_prog_mismatch_with_the_versions_served() {
    let (server, client) = rich_server(false);
    let e = RichV2Client::new(client.clone())
        .count(&1)
        .await
        .unwrap_err();
    assert_eq!(
        rejected(e),
        peerwire::CallStatus::ProgMismatch { low: 1, high: 1 }
    );
    server.shutdown().await;
    let (server, client) = rich_server(true);
    let e = client
        .call(RICH_PROG, 3, 1, Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(
        rejected(e),
        peerwire::CallStatus::ProgMismatch { low: 1, high: 2 }
    );
    server.shutdown().await;
}

/// Every type rich.x generates, from values proptest chooses: each
/// encodes to `encoded_len` bytes, decodes back (from a slice and from
/// shared `Bytes`) to the same value, and encodes again to the same bytes.
mod properties {
    use super::*;
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
        (any::<i32>(), any::<i32>(), any::<f64>(), any::<f32>()).prop_map(
            |(x, y, weight, scale)| Point {
                x,
                y,
                weight,
                scale,
            },
        )
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
}
