//! # Typed calls, and programs from `.x` files
//!
//! Raw calls carry `Bytes` of XDR. Typed calls encode and decode for you,
//! as fast as raw ones: the arguments are encoded straight into the
//! connection's write buffer, and the results' `opaque` and `string` data
//! are slices of the reply as received.
//!
//! ## By hand
//!
//! A [`Procedure<A, R>`](crate::Procedure) constant names a program,
//! version and procedure with its argument and result types;
//! [`Client::call_proc`](crate::Client::call_proc) calls it, and
//! [`Client::call_xdr`](crate::Client::call_xdr) is the same by number. On
//! the server, a [`server::Program`](crate::server::Program) is one
//! `dispatch`, written as an `async fn` on your own type (so no orphan-rule
//! trap); [`Call::args`](crate::server::Call::args) answers GARBAGE_ARGS
//! when the arguments do not decode, and
//! [`Call::results`](crate::server::Call::results) encodes the results.
//!
//! ```
//! use bytes::Bytes;
//! use peerwire::proto::xdr::XdrString;
//! use peerwire::server::{Call, Program};
//! use peerwire::{CallStatus, Client, ClientOptions, Endpoint, Error, ProcError, Procedure,
//!                Server, ServerOptions};
//!
//! const KV: u32 = 0x2000_0100;
//! /// LEN: a string in, its length in bytes out.
//! const LEN: Procedure<XdrString, u32> = Procedure::new(KV, 1, 1, "LEN");
//!
//! struct KvV1;
//!
//! impl Program for KvV1 {
//!     const PROGRAM: u32 = KV;
//!     const VERSION: u32 = 1;
//!
//!     async fn dispatch(&self, call: Call) -> Result<Bytes, ProcError> {
//!         match call.procedure {
//!             1 => {
//!                 let key: XdrString = call.args()?; // GARBAGE_ARGS if it does not decode
//!                 call.results(&(key.as_bytes().len() as u32))
//!             }
//!             _ => Err(ProcError::ProcUnavail),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peerwire::Error> {
//! let server = Server::new(ServerOptions::default())
//!     .program(KvV1)
//!     .serve(&["127.0.0.1:0".parse()?])?;
//! let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
//!
//! let len = client.call_proc(&LEN, &XdrString::from("colour")).await?;
//! assert_eq!(len, 6);
//! // The same by number, the types given at the call.
//! let len: u32 = client.call_xdr(KV, 1, 1, &XdrString::from("red")).await?;
//! assert_eq!(len, 3);
//! // Arguments that do not decode as the server's type: GARBAGE_ARGS.
//! let wrong: Result<u32, Error> = client.call_xdr(KV, 1, 1, &u64::MAX).await;
//! assert!(matches!(wrong, Err(Error::CallRejected { status: CallStatus::GarbageArgs, .. })));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! - **Strings as the bytes on the wire.**
//!   [`XdrString`](crate::proto::xdr::XdrString) keeps an XDR string's
//!   bytes, whatever they are (rpcgen's C passes any byte), with a checked
//!   `to_str()` view and a `Display` that escapes what is not printable
//!   UTF-8.
//! - **Bounds both ways.** Every `<N>` is checked at decode before
//!   anything is allocated. On the way out, typed arguments with an item
//!   over its bound fail with [`Error::BadArgs`](crate::Error::BadArgs)
//!   and nothing is sent; results over a bound are answered SYSTEM_ERR
//!   with a warning, as rpcgen's C servers answer results they cannot
//!   encode.
//! - **Cost.** A typed call costs the client no heap allocation, as a raw
//!   call does, and the server one, as a raw call does (the results'
//!   buffer, sized exactly); `tests/alloc_count.rs` counts them. A
//!   `dispatch` that finishes at its first poll runs in a reused box.
//!
//! ## From a `.x` file
//!
//! Write a program as rpcgen reads it, compile it with peerwire's `.x`
//! compiler (feature `xdrgen`), and write only the procedure bodies. The
//! guide to that is the rustdoc of the `peerwire::xdrgen` module
//! ("Defining a program", built with `--features xdrgen`), whose example
//! runs as a doctest; `cargo run --example kv` runs a key-value program
//! from `examples/kv.x` (generated into `examples/kv/kv.rs`, kept current
//! by a test): a server on 127.0.0.1 and a client from source 127.0.0.2
//! in one process.
//!
//! In short: `peerwire::xdrgen::Builder::new().file("proto/kv.x").compile()`
//! in `build.rs`, then `include!(concat!(env!("OUT_DIR"), "/kv.rs"))`. It
//! gives the types with `XdrEncode`/`XdrDecode`, the program's constants, a
//! `Procedure` constant per procedure, and per version a typed client
//! (`kv.get(&key).await`) and a server trait with one async method per
//! procedure, taking the call's [`CallContext`](crate::CallContext) and the
//! decoded arguments, served by a generated `<Version>Program<T>(pub T)`:
//! `Server::program(KvV1Program(store))`.
//! `cargo run --example xdrgen --features xdrgen -- FILE.x` prints what a
//! file generates; errors name `file:line:column` and what was expected.
//! The types map `opaque` to `Bytes` and `string` to `XdrString`, linked
//! lists to bounded `Vec`s decoded without recursion, and enums to Rust
//! enums that refuse unknown values; they are `Eq` and `Hash` unless they
//! hold a float. `Builder::clients(false)` and `servers(false)` leave
//! either side out. What the language covers, and exactly which
//! preprocessor lines are taken, is in the `xdrgen` module docs. Of the
//! `.x` files on the machine this was written on, 13 of the 17 in
//! `/usr/include/rpcsvc` compile as they are (the other four need names
//! from C headers or other files), and 6 of GlusterFS's 10 in
//! `rpc/xdr/src` (they are not in the repository).
//!
//! peerwire's own programs are `.x` files too: HELLO
//! (`src/peer/hello.x`), the portmapper (`src/programs/portmap.x`,
//! [`PmapV2Client`](crate::programs::portmap::PmapV2Client)), GF-DUMP
//! (`src/programs/gf_dump.x`,
//! [`GfDumpV1Client`](crate::programs::gf_dump::GfDumpV1Client)) and
//! peerd's admin program (`examples/peerd/admin.x`). The generated Rust is
//! committed beside them, and `tests/xdrgen.rs` checks it is what the
//! compiler makes now (`PEERWIRE_BLESS=1` rewrites it).
//!
//! Against real peers, `tests/rpcgen.rs` compiles `tests/rpcgen/pwtest.x`
//! with both `rpcgen` and peerwire's compiler and runs typed calls both
//! ways over IPv4 and IPv6: the generated client against the rpcgen C
//! server, and the rpcgen C client against peerwire's generated server.
//! Each way covers opaque of 0 to 1,000,000 bytes in 96-byte fragments,
//! non-UTF-8 strings, every union arm, linked lists of 0, 1 and 100 nodes,
//! fixed and variable arrays, optional values present and absent, AUTH_SYS
//! credentials (in the handler's `CallContext` on peerwire's side), and the
//! bound source (`svc_getcaller` on the C side, `CallContext::observed` on
//! ours). Errors are checked both ways: PROG_MISMATCH with the version
//! range, PROC_UNAVAIL and GARBAGE_ARGS arrive as `Error::CallRejected`
//! from the C server and as libtirpc's `clnt_stat` from peerwire's server,
//! and `rpcinfo -a` reads peerwire's version range; the connection serves
//! the next call after each. A property test round-trips every type of
//! `tests/xdrgen/rich.x` (every construct the compiler takes), and the fuzz
//! target `generated_types` decodes each from arbitrary bytes.
