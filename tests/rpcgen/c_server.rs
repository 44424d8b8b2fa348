//! peerwire's client (and its codec) against the C server built from
//! pwtest.x: a libtirpc `svc_vc_create` server that answers one call at a
//! time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::RpcCodec;
use peerwire::proto::{
    AcceptStatus, AuthSys, CallHeader, Credential, Message, MessageBody, RecordDecoder,
    RecordEncoder, RecordLimits, ReplyBody, record_header,
};
use peerwire::{
    CallOptions, Client, ClientOptions, ConnectOptions, Connector, Endpoint, Link, ScopedIp,
    Sources,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::tap::{Direction, Tap};
use super::{
    AUTH_SYS, CALLER, CREDS, CServer, ECHO, GENEROUS, Ip, PROG, VERS, blob, block_on,
    echo_call_len, echo_reply_len, libtirpc_fragments, pattern, unblob, uncaller, uncreds,
};

/// Client options for one connection that must not change under a trial:
/// no pings, no reconnects hidden by backoff.
fn options() -> ClientOptions {
    ClientOptions {
        deadline: GENEROUS,
        ping_interval: GENEROUS * 60,
        ping_timeout: GENEROUS * 120,
        breaker_threshold: 1,
        ..ClientOptions::default()
    }
}

/// A client of `addr`.
fn client_of(addr: SocketAddr, options: ClientOptions) -> Client {
    Client::new(vec![Endpoint::from(addr)], options).unwrap()
}

/// ECHO of `payload`; asserts the C server returned exactly it.
async fn assert_echoes(client: &Client, payload: &[u8]) {
    let results = client
        .call(PROG, VERS, ECHO, blob(payload))
        .await
        .unwrap_or_else(|e| panic!("ECHO of {} bytes failed: {e}", payload.len()));
    let echoed = unblob(&results);
    assert_eq!(
        echoed.len(),
        payload.len(),
        "echo of {} bytes",
        payload.len()
    );
    assert!(
        echoed == payload,
        "the echo of {} bytes differs",
        payload.len()
    );
}

/// Asserts each record that passed the tap in `direction` was cut as
/// `expected` says, for records of `lens` bytes.
#[track_caller]
fn assert_cut(
    tap: &Tap,
    direction: Direction,
    lens: &[usize],
    expected: impl Fn(usize) -> Vec<u32>,
) {
    let records = tap.records(direction);
    assert_eq!(records.len(), lens.len(), "{direction:?}: records seen");
    for (record, &len) in records.iter().zip(lens) {
        let total: u64 = record.iter().map(|&f| u64::from(f)).sum();
        assert_eq!(total, len as u64, "{direction:?}: a record of {len} bytes");
        assert!(
            *record == expected(len),
            "{direction:?}: a record of {len} bytes came in {} fragments {:?}…{:?}, \
             expected {} fragments",
            record.len(),
            &record[..record.len().min(4)],
            &record[record.len().saturating_sub(2)..],
            expected(len).len()
        );
    }
}

/// The C server with 100-byte send buffers replies in fragments of 96
/// bytes, and a reply of exactly 96 bytes (an echo of 68) with a full
/// fragment and an empty last one: peerwire's client takes them all.
pub fn c_server_replies_in_96_byte_fragments(ip: Ip) {
    let server = CServer::start(ip, 100, 0);
    block_on(async {
        let tap = Tap::start(ip.any_port(), server.addr()).await;
        let client = client_of(tap.addr(), options());
        let sizes = [0, 1, 68, 1000, 100_000];
        for n in sizes {
            assert_echoes(&client, &pattern(n)).await;
        }
        let replies: Vec<usize> = sizes.iter().map(|&n| echo_reply_len(n)).collect();
        assert_cut(&tap, Direction::Replies, &replies, |len| {
            libtirpc_fragments(len, 100)
        });
        // The empty last fragment libtirpc wrote, seen on the wire.
        assert_eq!(tap.records(Direction::Replies)[2], [96, 0]);
        // peerwire's own calls went in one fragment each.
        let calls: Vec<usize> = sizes.iter().map(|&n| echo_call_len(n)).collect();
        assert_cut(&tap, Direction::Calls, &calls, |len| vec![len as u32]);
        assert_eq!(client.stats().reconnects, 0);
        client.close();
    });
}

/// With libtirpc's default buffers (64 KiB) the C server replies to an
/// echo of 1 MB in 17 fragments of up to 65,532 bytes.
pub fn c_server_with_default_buffers_replies_in_64_kib_fragments(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let tap = Tap::start(ip.any_port(), server.addr()).await;
        let client = client_of(tap.addr(), options());
        assert_echoes(&client, &pattern(1 << 20)).await;
        let reply = echo_reply_len(1 << 20);
        assert_cut(&tap, Direction::Replies, &[reply], |len| {
            libtirpc_fragments(len, 64 * 1024)
        });
        assert_eq!(tap.records(Direction::Replies)[0].len(), 17);
        client.close();
    });
}

/// peerwire's codec writing 100-byte fragments (its `RecordEncoder`), to
/// a C server whose receive and send buffers are 100 bytes: the C side
/// reassembles the calls and answers each XID.
pub fn c_server_takes_100_byte_fragments_from_peerwire_codec(ip: Ip) {
    let server = CServer::start(ip, 100, 100);
    block_on(async {
        let tap = Tap::start(ip.any_port(), server.addr()).await;
        let stream = TcpStream::connect(tap.addr()).await.unwrap();
        let codec = RpcCodec::new(
            RecordLimits::default(),
            RecordEncoder::with_fragment_size(100),
        );
        let mut framed = Framed::new(stream, codec);
        let sizes = [1000, 100_000];
        for (xid, n) in (0x0bad_c0de..).zip(sizes) {
            let payload = pattern(n);
            let call = Message::call(xid, CallHeader::new(PROG, VERS, ECHO), blob(&payload));
            framed.send(&call).await.unwrap();
            let reply = tokio::time::timeout(GENEROUS, framed.next())
                .await
                .expect("the C server did not answer")
                .expect("the C server closed the connection")
                .expect("the stream broke")
                .expect("a malformed reply");
            assert_eq!(reply.xid, xid);
            let MessageBody::Reply { body, results } = reply.body else {
                panic!("not a reply: {reply:?}");
            };
            assert_eq!(body, ReplyBody::accepted(AcceptStatus::Success));
            assert!(unblob(&results) == payload, "the echo of {n} bytes differs");
        }
        let calls: Vec<usize> = sizes.iter().map(|&n| echo_call_len(n)).collect();
        assert_cut(&tap, Direction::Calls, &calls, |len| {
            let mut cut = vec![100; len / 100];
            if len % 100 != 0 {
                cut.push((len % 100) as u32);
            }
            cut
        });
        assert_eq!(tap.records(Direction::Calls)[1].len(), 1001);
    });
}

/// A call whose record ends with an empty last fragment (as libtirpc
/// itself writes when a record fills its buffer exactly; peerwire's
/// encoder never does) is taken by the C server.
pub fn c_server_takes_a_call_ending_in_an_empty_fragment(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let payload = pattern(100);
        let call = Message::call(0x5eed, CallHeader::new(PROG, VERS, ECHO), blob(&payload));
        let mut body = BytesMut::new();
        call.encode(&mut body);
        // Three fragments: 10 bytes, the rest, and an empty last one.
        let mut wire = Vec::new();
        wire.extend_from_slice(&record_header(10, false));
        wire.extend_from_slice(&body[..10]);
        wire.extend_from_slice(&record_header(body.len() as u32 - 10, false));
        wire.extend_from_slice(&body[10..]);
        wire.extend_from_slice(&record_header(0, true));
        stream.write_all(&wire).await.unwrap();

        let mut records = RecordDecoder::new(RecordLimits::default());
        let mut buf = BytesMut::new();
        let record = loop {
            if let Some(record) = records.decode(&mut buf).unwrap() {
                break record;
            }
            let n = tokio::time::timeout(GENEROUS, stream.read_buf(&mut buf))
                .await
                .expect("the C server did not answer")
                .unwrap();
            assert_ne!(
                n, 0,
                "the C server closed the connection instead of answering"
            );
        };
        let reply = Message::decode(record).unwrap();
        assert_eq!(reply.xid, 0x5eed);
        let MessageBody::Reply { body, results } = reply.body else {
            panic!("not a reply: {reply:?}");
        };
        assert_eq!(body, ReplyBody::accepted(AcceptStatus::Success));
        assert!(unblob(&results) == payload, "the echo differs");
    });
}

/// A client bound to a source (127.0.0.2; ::1 on IPv6): the address the
/// C server's `svc_getcaller` reports is that source, and the port is the
/// connection's.
pub fn c_server_sees_the_clients_bound_source(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let source = ip.peerwire_source();
        let connect = ConnectOptions {
            sources: Sources::new().with(ScopedIp::from(source)),
            ..ConnectOptions::default()
        };

        // As a user configures it.
        let client = client_of(
            server.addr(),
            ClientOptions {
                connect: connect.clone(),
                ..options()
            },
        );
        let results = client.call(PROG, VERS, CALLER, Bytes::new()).await.unwrap();
        let (addr, _) = uncaller(&results);
        assert_eq!(addr, source.to_string(), "svc_getcaller's address");
        client.close();

        // The same connector under a transport that keeps the connection's
        // local address, to compare the port too.
        let connector = Connector::new(connect);
        let local = Arc::new(Mutex::new(Vec::new()));
        let destination = Endpoint::from(server.addr());
        let client = Client::with_transport(destination.clone(), options(), {
            let local = local.clone();
            move || {
                let (connector, destination, local) =
                    (connector.clone(), destination.clone(), local.clone());
                async move {
                    let connected = connector.connect(&destination).await?;
                    local.lock().unwrap().push(connected.local_addr());
                    Ok(Link::from(connected))
                }
            }
        });
        let results = client.call(PROG, VERS, CALLER, Bytes::new()).await.unwrap();
        let (addr, port) = uncaller(&results);
        let local = local.lock().unwrap().clone();
        assert_eq!(local.len(), 1, "one connection: {local:?}");
        assert_eq!(local[0].ip(), source);
        assert_eq!(addr, source.to_string(), "svc_getcaller's address");
        assert_eq!(port, u32::from(local[0].port()), "svc_getcaller's port");
        client.close();
    });
}

/// 200 calls issued at once on one connection to the C server, which
/// answers them one at a time: each caller gets the echo of its own
/// argument.
pub fn c_server_answers_200_pipelined_calls_each_to_its_caller(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let tap = Tap::start(ip.any_port(), server.addr()).await;
        let client = client_of(
            tap.addr(),
            ClientOptions {
                max_in_flight: 256,
                ..options()
            },
        );
        // Arguments of different lengths and contents, so that a reply
        // given to the wrong caller cannot pass.
        let payloads: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("call {i}:").repeat(i % 7 + 1).into_bytes())
            .collect();
        let replies = join_all(
            payloads
                .iter()
                .map(|p| client.call(PROG, VERS, ECHO, blob(p))),
        )
        .await;
        for (i, (reply, payload)) in replies.into_iter().zip(&payloads).enumerate() {
            let reply = reply.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
            assert!(
                unblob(&reply) == *payload,
                "call {i} got {:?}",
                String::from_utf8_lossy(&unblob(&reply))
            );
        }
        assert_eq!(tap.records(Direction::Calls).len(), 200);
        assert_eq!(tap.records(Direction::Replies).len(), 200);
        // Many calls passed towards the server before their replies came
        // back: they were in flight together on the one connection.
        let outstanding = tap.most_outstanding();
        assert!(
            outstanding >= 100,
            "at most {outstanding} calls were in flight at once"
        );
        let stats = client.stats();
        assert_eq!((stats.succeeded, stats.reconnects), (200, 0), "{stats:?}");
        client.close();
    });
}

/// An AUTH_SYS credential from peerwire's client reaches the C server as
/// libtirpc parses it: stamp, machine name, uid, gid and groups.
pub fn c_server_sees_the_clients_auth_sys_credential(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let client = client_of(server.addr(), options());
        let sent = AuthSys {
            stamp: 0x5eed_1234,
            machine_name: "peerwire-test.example".into(),
            uid: 1234,
            gid: 5678,
            gids: vec![1, 2, 3, 65_534],
        };
        let call = CallOptions {
            cred: Credential::Sys(sent.clone()).to_opaque_auth().unwrap(),
            ..CallOptions::default()
        };
        let results = client
            .call_with(PROG, VERS, CREDS, Bytes::new(), &call)
            .await
            .unwrap();
        let (flavor, seen) = uncreds(&results);
        assert_eq!(flavor, AUTH_SYS);
        assert_eq!(seen, sent);

        // Without one, the C server sees AUTH_NONE (0).
        let results = client.call(PROG, VERS, CREDS, Bytes::new()).await.unwrap();
        assert_eq!(uncreds(&results).0, 0);
        client.close();
    });
}
