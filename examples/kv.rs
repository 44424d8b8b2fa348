//! A key-value program defined in examples/kv.x: a server and a client in
//! one process, each bound to its own address on loopback (the server
//! listens on 127.0.0.1, the client connects from 127.0.0.2). The client
//! PUTs a value, GETs it back and DELETEs it; the server prints the
//! address it observed for each call.
//!
//! ```text
//! cargo run --example kv
//! ```
//!
//! The types, the client (`KvV1Client`), the server trait (`KvV1Server`)
//! and its adapter (`KvV1Program`) come from examples/kv/kv.rs, which
//! `peerwire::xdrgen` generated from examples/kv.x. In a crate of your own,
//! generate it in `build.rs` instead (see the `peerwire::xdrgen` docs).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use peerwire::proto::xdr::XdrString;
use peerwire::{CallContext, Client, ClientOptions, ConnectOptions, Endpoint, ProcError};
use peerwire::{Server, ServerOptions, Sources};

// The generated module has more than this example uses (constants, NULL).
#[allow(dead_code)]
mod kv {
    include!("kv/kv.rs");
}
use kv::*;

/// The server's state: the procedures below are all the server code.
#[derive(Default)]
struct Store(Mutex<HashMap<XdrString, KvValue>>);

impl KvV1Server for Store {
    async fn get(&self, ctx: &CallContext, key: KvKey) -> Result<KvFound, ProcError> {
        println!("server: GET {} from {}", key.0, ctx.observed);
        Ok(match self.0.lock().unwrap().get(&key.0) {
            Some(value) => KvFound::True(value.clone()),
            None => KvFound::False,
        })
    }

    async fn put(&self, ctx: &CallContext, pair: KvPair) -> Result<(), ProcError> {
        println!("server: PUT {} from {}", pair.key.0, ctx.observed);
        self.0.lock().unwrap().insert(pair.key.0, pair.value);
        Ok(())
    }

    async fn delete(&self, ctx: &CallContext, key: KvKey) -> Result<bool, ProcError> {
        println!("server: DELETE {} from {}", key.0, ctx.observed);
        Ok(self.0.lock().unwrap().remove(&key.0).is_some())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::new(ServerOptions::default())
        .program(KvV1Program(Store::default()))
        .serve(&["127.0.0.1:0".parse()?])?;

    let source: IpAddr = "127.0.0.2".parse()?;
    let options = ClientOptions {
        connect: ConnectOptions {
            sources: Sources::new().with(source),
            ..ConnectOptions::default()
        },
        ..ClientOptions::default()
    };
    let server_addr = vec![Endpoint::from(server.local_addrs()[0])];
    let kv = KvV1Client::new(Client::new(server_addr, options)?);

    let key = KvKey("greeting".into());
    let value = KvValue("hello, peer".into());
    kv.put(&KvPair {
        key: key.clone(),
        value,
    })
    .await?;
    let found = kv.get(&key).await?;
    println!("client: GET greeting = {found:?}");
    println!("client: DELETE greeting = {}", kv.delete(&key).await?);

    server.shutdown().await;
    Ok(())
}
