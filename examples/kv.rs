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
use std::sync::Mutex;

use peerwire::proto::xdr::XdrString;
use peerwire::{CallContext, Client, ClientOptions, ProcError, Server, ServerOptions};

#[allow(dead_code)] // constants and NULL this example does not use
mod kv {
    include!("kv/kv.rs");
}
use kv::*;

/// The server's state: the three methods below are all its code.
#[derive(Default)]
struct Store(Mutex<HashMap<XdrString, KvValue>>);

impl KvV1Server for Store {
    async fn get(&self, ctx: &CallContext, key: KvKey) -> Result<KvFound, ProcError> {
        println!("server: GET {} from {}", key.0, ctx.observed);
        let value = self.0.lock().unwrap().get(&key.0).cloned();
        Ok(value.map_or(KvFound::False, KvFound::True))
    }

    async fn put(&self, _: &CallContext, pair: KvPair) -> Result<(), ProcError> {
        self.0.lock().unwrap().insert(pair.key.0, pair.value);
        Ok(())
    }

    async fn delete(&self, _: &CallContext, key: KvKey) -> Result<bool, ProcError> {
        Ok(self.0.lock().unwrap().remove(&key.0).is_some())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::new(ServerOptions::default())
        .program(KvV1Program(Store::default()))
        .serve(&["127.0.0.1:0".parse()?])?;
    let options = ClientOptions::default().with_source("127.0.0.2".parse::<std::net::IpAddr>()?);
    let kv = KvV1Client::new(Client::new(vec![server.local_addrs()[0].into()], options)?);

    let (key, value) = (KvKey("greeting".into()), KvValue("hello, peer".into()));
    kv.put(&KvPair {
        key: key.clone(),
        value,
    })
    .await?;
    println!("client: GET greeting = {:?}", kv.get(&key).await?);
    println!("client: DELETE greeting = {}", kv.delete(&key).await?);
    server.shutdown().await;
    Ok(())
}
