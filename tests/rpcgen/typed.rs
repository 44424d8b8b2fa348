//! peerwire's generated typed client against the C server, both compiled
//! from the same pwtest.x: peerwire's types and client from
//! `tests/rpcgen/pwtest.rs` (what `peerwire::xdrgen` generates from it,
//! committed and checked by `generated_pwtest_matches_the_golden_file`
//! with feature `xdrgen`), the C server by `rpcgen -M`.

use bytes::Bytes;
use peerwire::proto::{AuthSys, Credential};
use peerwire::{CallOptions, Client, ClientOptions, ConnectOptions, Endpoint, ScopedIp, Sources};

use super::pattern;
use super::pwtest::{
    PWTEST_CREDS, PWTEST_ECHO, PWTEST_PROG, PWTEST_RICH, PWTEST_VERS, PwtestBlob, PwtestName,
    PwtestNode, PwtestRich, PwtestValue, PwtestVersClient,
};
use super::tap::{Direction, Tap};
use super::{AUTH_SYS, CServer, GENEROUS, Ip, block_on, echo_reply_len, libtirpc_fragments};

fn options() -> ClientOptions {
    ClientOptions {
        deadline: GENEROUS,
        ping_interval: GENEROUS * 60,
        ping_timeout: GENEROUS * 120,
        breaker_threshold: 1,
        ..ClientOptions::default()
    }
}

fn typed_client(addr: std::net::SocketAddr, options: ClientOptions) -> PwtestVersClient {
    PwtestVersClient::new(Client::new(vec![Endpoint::from(addr)], options).unwrap())
}

/// The generated program numbers are pwtest.x's, as rpcgen numbers them
/// for the C server.
fn assert_numbers() {
    assert_eq!(
        (PWTEST_PROG, PWTEST_VERS),
        (super::PROG, super::VERS),
        "program and version"
    );
    assert_eq!(PWTEST_ECHO.procedure, super::ECHO);
    assert_eq!(PWTEST_CREDS.procedure, super::CREDS);
}

/// ECHO through the generated client, of opaque of 0, 1, 3, 4,000 and
/// 1,000,000 bytes, to the C server with 100-byte buffers: every reply of
/// more than 96 bytes comes in many fragments (over 10,000 for the
/// largest), and the generated decoder gets each back exactly.
pub fn typed_client_echoes_opaque_of_every_size_from_c_server(ip: Ip) {
    assert_numbers();
    let server = CServer::start(ip, 100, 0);
    block_on(async {
        let tap = Tap::start(ip.any_port(), server.addr()).await;
        let client = typed_client(tap.addr(), options());
        let sizes = [0, 1, 3, 4_000, 1_000_000];
        for n in sizes {
            let sent = PwtestBlob(Bytes::from(pattern(n)));
            let echoed = client
                .echo(&sent)
                .await
                .unwrap_or_else(|e| panic!("typed ECHO of {n} bytes failed: {e}"));
            assert_eq!(echoed.0.len(), n, "echo of {n} bytes");
            assert!(echoed == sent, "the typed echo of {n} bytes differs");
        }
        // The same calls through the typed layer without the generated
        // client: `call_proc` with the generated procedure constant.
        let sent = PwtestBlob(Bytes::from(pattern(3)));
        let echoed = client
            .client()
            .call_proc(&PWTEST_ECHO, &sent)
            .await
            .unwrap();
        assert_eq!(echoed, sent);

        let records = tap.records(Direction::Replies);
        assert_eq!(records.len(), sizes.len() + 1, "replies seen");
        for (record, n) in records.iter().zip(sizes) {
            assert_eq!(*record, libtirpc_fragments(echo_reply_len(n), 100));
        }
        assert!(records[4].len() > 10_000, "{} fragments", records[4].len());
        assert_eq!(client.client().stats().reconnects, 0);
        client.client().close();
    });
}

/// CALLER through the generated client: the C server's `svc_getcaller`
/// reports the source peerwire's client bound, decoded as the generated
/// struct with an `XdrString` address.
pub fn typed_client_gets_its_bound_source_from_c_server(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let source = ip.peerwire_source();
        let client = typed_client(
            server.addr(),
            ClientOptions {
                connect: ConnectOptions {
                    sources: Sources::new().with(ScopedIp::from(source)),
                    ..ConnectOptions::default()
                },
                ..options()
            },
        );
        let caller = client.caller().await.unwrap();
        assert_eq!(
            caller.addr.to_str().expect("a UTF-8 address"),
            source.to_string(),
            "svc_getcaller's address"
        );
        assert_ne!(caller.port, 0, "svc_getcaller's port");
        assert_ne!(
            caller.port,
            u32::from(server.addr().port()),
            "svc_getcaller's port is the client's, not the server's"
        );
        client.client().close();
    });
}

/// CREDS through the typed layer with an AUTH_SYS credential: the C
/// server's view of it comes back as the generated struct, field by field;
/// without one, the flavor is AUTH_NONE.
pub fn typed_client_gets_its_auth_sys_credential_from_c_server(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let client = typed_client(server.addr(), options());
        let sent = AuthSys {
            stamp: 0x0bad_cafe,
            machine_name: "typed.peerwire-test.example".into(),
            uid: 4321,
            gid: 8765,
            gids: (100..116).collect(),
        };
        let call = CallOptions {
            cred: Credential::Sys(sent.clone()).to_opaque_auth().unwrap(),
            ..CallOptions::default()
        };
        let seen = client
            .client()
            .call_proc_with(&PWTEST_CREDS, &(), &call)
            .await
            .unwrap();
        assert_eq!(seen.flavor, AUTH_SYS);
        assert_eq!(seen.stamp, sent.stamp);
        assert_eq!(seen.machine, sent.machine_name.as_str());
        assert_eq!((seen.uid, seen.gid), (sent.uid, sent.gid));
        assert_eq!(seen.gids, sent.gids);

        let seen = client.creds().await.unwrap();
        assert_eq!(seen.flavor, 0, "AUTH_NONE");
        client.client().close();
    });
}

/// NAME through the generated client: strings that are not UTF-8 (a
/// lone 0xff, a truncated sequence, Latin-1 text) go to the C server and
/// come back byte for byte as the generated `XdrString`, as do an empty
/// and a UTF-8 string; only the checked `&str` view refuses the others.
pub fn typed_client_echoes_non_utf8_strings_from_c_server(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let client = typed_client(server.addr(), options());
        let names = super::NAMES;
        for name in names {
            let echoed = client
                .name(&PwtestName(name.into()))
                .await
                .unwrap_or_else(|e| panic!("typed NAME of {name:?} failed: {e}"));
            assert_eq!(echoed.0.as_bytes(), name, "the echo of {name:?}");
            assert_eq!(
                echoed.0.to_str().is_ok(),
                std::str::from_utf8(name).is_ok(),
                "the &str view of {name:?}"
            );
        }
        client.client().close();
    });
}

/// RICH through the generated client: the C server decodes the generated
/// encoding of every arm of a union, linked lists of 0, 1 and 100 nodes, a
/// fixed and a variable array (empty and full), an absent and a present
/// optional value, a bool and a double, copies it through libtirpc's XDR
/// and sends it back, and the generated decoder gets back the same value.
pub fn typed_client_echoes_every_construct_from_c_server(ip: Ip) {
    let server = CServer::start(ip, 100, 0);
    block_on(async {
        let client = typed_client(server.addr(), options());
        let values = [
            PwtestValue::PwtestNone,
            PwtestValue::PwtestNumber(-0x1234_5678_9abc),
            PwtestValue::PwtestText(b"t\xe9xt"[..].into()),
            PwtestValue::PwtestPoint([-7, i32::MAX]),
        ];
        let lists = [0, 1, 100];
        for (i, value) in values.into_iter().enumerate() {
            for (j, len) in lists.into_iter().enumerate() {
                let sent = PwtestRich {
                    value: value.clone(),
                    nodes: (0..len).map(|id| PwtestNode { id: id * 3 + 1 }).collect(),
                    fixed: [i as u32, j as u32, u32::MAX],
                    many: (0..(i as u64 * 33).min(100)).map(|n| n << 40 | n).collect(),
                    maybe: (j % 2 == 1).then(|| PwtestName(b"\xffmaybe"[..].into())),
                    flag: j == 2,
                    real: -1.5 * i as f64,
                };
                let echoed = client
                    .client()
                    .call_proc(&PWTEST_RICH, &sent)
                    .await
                    .unwrap_or_else(|e| panic!("typed RICH of {sent:?} failed: {e}"));
                assert_eq!(echoed, sent);
            }
        }
        client.client().close();
    });
}

/// tests/rpcgen/pwtest.rs is what peerwire's compiler generates from
/// pwtest.x today. Rewrite it after a deliberate change to the generator
/// with `PEERWIRE_BLESS=1 cargo test --features xdrgen --test rpcgen generated`.
#[cfg(feature = "xdrgen")]
pub fn generated_pwtest_matches_the_golden_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rpcgen");
    let rust = peerwire::xdrgen::Builder::new()
        .generate(&dir.join("pwtest.x"))
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = dir.join("pwtest.rs");
    if std::env::var_os("PEERWIRE_BLESS").is_some() {
        std::fs::write(&golden, &rust).unwrap();
    }
    let committed = std::fs::read_to_string(&golden).unwrap();
    assert!(
        rust == committed,
        "tests/rpcgen/pwtest.rs is not what pwtest.x generates; rerun with PEERWIRE_BLESS=1 \
         after checking the difference"
    );
}
