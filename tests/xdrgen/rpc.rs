//! The generated clients and servers: by hand over raw bytes, against
//! each other, and the replies to unknown procedures, bad arguments and
//! unserved versions.

use std::future::Future;

use bytes::Bytes;
use peerwire::proto::xdr::{XdrString, from_shared, to_bytes};

use super::{LIST_CAP, name, point, rich};
use crate::rich::*;

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
