//! The `.x` compiler: XDR (RFC 4506) and ONC RPC program definitions
//! (RFC 5531) compiled to Rust, for a user's `build.rs` (feature `xdrgen`).
//!
//! # Defining a program
//!
//! Write the program as rpcgen would read it. examples/kv.x, a key-value
//! store, is:
//!
//! ```text
//! const KV_MAXKEY = 256;
//! const KV_MAXVALUE = 65536;
//! typedef string kv_key<KV_MAXKEY>;
//! typedef opaque kv_value<KV_MAXVALUE>;
//! /* A key and the value to store under it. */
//! struct kv_pair { kv_key key; kv_value value; };
//! /* What GET finds: the value, or nothing. */
//! union kv_found switch (bool found) {
//! case TRUE:  kv_value value;
//! case FALSE: void;
//! };
//! program KV_PROG {
//!     version KV_V1 {
//!         void KV_NULL(void) = 0;
//!         kv_found KV_GET(kv_key) = 1;
//!         void KV_PUT(kv_pair) = 2;
//!         bool KV_DELETE(kv_key) = 3;
//!     } = 1;
//! } = 0x20000100;
//! ```
//!
//! then in `build.rs` (with `peerwire = { features = ["xdrgen"] }` in
//! `[build-dependencies]`):
//!
//! ```no_run
//! // build.rs, in `fn main`:
//! peerwire::xdrgen::Builder::new()
//!     .file("proto/kv.x")
//!     .compile()
//!     .unwrap_or_else(|e| panic!("{e}"));
//! ```
//!
//! and in the crate, `include!(concat!(env!("OUT_DIR"), "/kv.rs"));`. The
//! file gives `KvKey`, `KvValue`, `KvPair` and `KvFound` with
//! [`XdrEncode`] and [`XdrDecode`], `KV_MAXKEY`, `KV_PROG`, `KV_V1`, and
//! `KV_GET: Procedure<KvKey, KvFound>` for [`Client::call_proc`]; and for
//! each version, a client, a server trait and the program that serves it.
//! `cargo run --example xdrgen --features xdrgen -- proto/kv.x` prints
//! what a file generates.
//!
//! ## The client
//!
//! `KvV1Client` wraps a [`Client`] with one async method per procedure:
//! `kv.get(&key).await` is a `Result<KvFound, peerwire::Error>`.
//!
//! ## The server
//!
//! `KvV1Server` is a trait with one method per procedure (but NULL, which
//! the server answers itself), given the call's [`CallContext`] (the
//! address the server observed, the peer's node ID, the credentials) and
//! the decoded arguments, returning `Result<Results, ProcError>`. Its
//! methods are declared as returning `impl Future + Send`, so an
//! implementation may write them as `async fn` (whose futures must then
//! be `Send`: hold no `MutexGuard` across an `.await`), or return a ready
//! future. `KvV1Program(handlers)` is the [`Program`] that serves any
//! implementation; [`Server::program`] registers it. Its dispatch answers
//! GARBAGE_ARGS for arguments that do not decode (over a bound, cut short,
//! bytes left over), PROC_UNAVAIL for a procedure the version lacks, and
//! a [`ProcError`] a method returns as that error; the server answers
//! PROG_MISMATCH with the versions it serves for any other version. A
//! method that finishes without waiting is polled in a reused box, so its
//! call costs the server one allocation, its results' buffer, as a raw
//! [`Service`](crate::Service) call does.
//!
//! A whole program, server and client (this runs, on loopback):
//!
//! ```
//! # #[allow(dead_code)]
//! # mod kv { include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kv/kv.rs")); }
//! # use kv::*;
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use peerwire::proto::xdr::XdrString;
//! use peerwire::{CallContext, Client, ClientOptions, ProcError, Server, ServerOptions};
//!
//! #[derive(Default)]
//! struct Store(Mutex<HashMap<XdrString, KvValue>>);
//!
//! impl KvV1Server for Store {
//!     async fn get(&self, _ctx: &CallContext, key: KvKey) -> Result<KvFound, ProcError> {
//!         Ok(match self.0.lock().unwrap().get(&key.0) {
//!             Some(value) => KvFound::True(value.clone()),
//!             None => KvFound::False,
//!         })
//!     }
//!
//!     async fn put(&self, ctx: &CallContext, pair: KvPair) -> Result<(), ProcError> {
//!         println!("PUT from {}", ctx.observed);
//!         self.0.lock().unwrap().insert(pair.key.0, pair.value);
//!         Ok(())
//!     }
//!
//!     async fn delete(&self, _ctx: &CallContext, key: KvKey) -> Result<bool, ProcError> {
//!         Ok(self.0.lock().unwrap().remove(&key.0).is_some())
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(ServerOptions::default())
//!     .program(KvV1Program(Store::default()))
//!     .serve(&["127.0.0.1:0".parse()?])?;
//!
//! let options = ClientOptions::default().with_source("127.0.0.2".parse::<std::net::IpAddr>()?);
//! let kv = KvV1Client::new(Client::new(vec![server.local_addrs()[0].into()], options)?);
//! let key = KvKey("greeting".into());
//! kv.put(&KvPair { key: key.clone(), value: KvValue("hello".into()) }).await?;
//! assert_eq!(kv.get(&key).await?, KvFound::True(KvValue("hello".into())));
//! assert!(kv.delete(&key).await?);
//! assert_eq!(kv.get(&key).await?, KvFound::False);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The trait is the crate's own (generated into it), so it can be
//! implemented for any type, `Arc<State>` included. Serving several
//! versions is one `.program(...)` each. examples/kv.rs runs this server
//! and a client in one process (`cargo run --example kv`).
//!
//! peerwire's own programs are defined the same way, their generated Rust
//! committed next to them: src/peer/hello.x (types and numbers only,
//! `.clients(false).servers(false)`: the connection code drives HELLO),
//! src/programs/portmap.x and gf_dump.x (typed clients, no servers) and
//! examples/peerd/admin.x (client and server).
//!
//! [`XdrEncode`]: crate::proto::xdr::XdrEncode
//! [`XdrDecode`]: crate::proto::xdr::XdrDecode
//! [`Client::call_proc`]: crate::Client::call_proc
//! [`Client`]: crate::Client
//! [`CallContext`]: crate::CallContext
//! [`ProcError`]: crate::ProcError
//! [`Program`]: crate::server::Program
//! [`Server::program`]: crate::Server::program
//!
//! # What each construct becomes
//!
//! | XDR | Rust |
//! |---|---|
//! | `const N = v;`, `#define N v` | `pub const N: u32` (or `i64` when negative or over 32 bits) |
//! | `enum e { A = 1, ... }` | `#[repr(i32)] enum E`; decoding an unknown value is an error |
//! | `struct s { ... }` | `struct S` with the fields in wire order, names in snake_case |
//! | `union u switch (d) { case A: ...; default: ...; }` | `enum U`, one variant per case label (named after it: `A`, `Case5`, `CaseMinus1`, `True`); `default` is `Default(discriminant, value)`; without `default` an unlisted discriminant is an error |
//! | `typedef T name...;` | a newtype `struct Name(pub T)` that keeps the typedef's bounds |
//! | `int`, `unsigned`, `hyper`, `unsigned hyper`, `bool`, `float`, `double` | `i32`, `u32`, `i64`, `u64`, `bool`, `f32`, `f64` |
//! | `char`, `short`, `long` / `u_char`, `u_short`, `u_long`, `u_int`, `unsigned long`... | `i32` / `u32` (4 bytes on the wire, as rpcgen's filters) |
//! | `quad_t` / `u_quad_t` | `i64` / `u64` |
//! | `T x[N]`, `opaque x[N]` | `[T; N]`, `[u8; N]` (N at most 65,536) |
//! | `T x<N>`, `T x<>` | `Vec<T>`, the bound checked before anything is allocated |
//! | `opaque x<N>` | [`Bytes`](bytes::Bytes), a slice of the record when it is decoded from a shared buffer |
//! | `string x<N>` | [`XdrString`](crate::proto::xdr::XdrString): the bytes on the wire, any bytes, with a checked `&str` view |
//! | `T *x` | `Option<T>` |
//! | `struct l { ...; l *next; }` (a linked list) | `struct L` without `next`; `l *` becomes `Vec<L>`, decoded by a loop of at most [`Builder::max_list_len`] nodes |
//! | `program P { version V { R F(A) = n; } = v; } = p;` | `P: u32`, `V: u32`, `F: Procedure<A, R>` (`()` for `void`); a name used in several versions gets `_V<version>` |
//! | (each version) | `VClient`, wrapping a [`Client`](crate::Client), with one async method per procedure, named in snake_case without the longest prefix ending in `_` that all the version's procedures share (`KV_GET` → `get`, `GF_DUMP_PING` → `ping`); left out with [`Builder::clients`]`(false)` |
//! | (each version) | `trait VServer`, one method per procedure but procedure 0, named as the client's, taking `&CallContext` and the arguments (none for `void`); `struct VProgram<T>(pub T)`, a [`Program`](crate::server::Program) for any `T: VServer`; both left out with [`Builder::servers`]`(false)` |
//!
//! Names follow Rust's conventions (UpperCamel types and variants,
//! snake_case fields and methods, SCREAMING constants); a Rust keyword
//! becomes a raw identifier (`type` → `r#type`), and `self`, `Self`,
//! `super` and `crate` get a trailing `_`. Constants a `.x` file takes
//! from C headers can be given with [`Builder::define`]. rpcgen's
//! `netobj` is known (`opaque<1024>`), as are `TRUE` and `FALSE`.
//!
//! Each item carries the comment written just before it in the `.x` file
//! as its doc, or a line naming what it was. Every type derives `Clone`,
//! `Debug` and `PartialEq`, and `Eq` and `Hash` too unless it holds a
//! `float` or `double` at any depth.
//!
//! Bounds hold both ways. Decoders check every `<N>` (and the linked-list
//! cap) before they allocate. Encoders note every bounded item with
//! [`XdrWriter::bound`](crate::proto::xdr::XdrWriter::bound): a typed call
//! whose arguments hold one over its bound fails with
//! [`Error::BadArgs`](crate::Error::BadArgs) before anything is sent, and
//! generated dispatch answers results over a bound with SYSTEM_ERR
//! ([`Call::results`](crate::server::Call::results)), as rpcgen's C
//! servers do.
//!
//! # The preprocessor
//!
//! `%` lines (rpcgen's pass-through to C) are ignored. `#ifdef NAME`,
//! `#ifndef NAME`, `#if defined(NAME)`, `#if !defined(NAME)`, `#if 0`,
//! `#if 1`, `#else` and `#endif` are evaluated with only the names the
//! file itself `#define`s: `RPC_HDR`, `RPC_XDR`, `RPC_SVC` and `RPC_CLNT`
//! are undefined, so their blocks (which hold C for rpcgen's outputs) are
//! left out. `#define NAME number` is a constant, `#define NAME` defines a
//! name for `#ifdef`, `#undef` removes one. `#include`, `#elif` and every
//! other directive are errors, as are `#define`s whose value is not a
//! number.
//!
//! # What is refused
//!
//! Every refusal is an [`Error::Syntax`] that names the file, line and
//! column, so an invalid file never yields Rust that fails to compile:
//! unknown types and constants, names that clash once converted to Rust,
//! recursive types other than linked lists, duplicate enum values or case
//! labels, bounds outside 32 bits, rpcgen `-N` procedures with more than one
//! argument (put the arguments in a struct), anonymous inline
//! `struct { ... }` types, and `quadruple`.

mod emit;
mod lex;
mod names;
mod parse;

use std::fmt;
use std::path::{Path, PathBuf};

/// A `.x` file that could not be compiled, or a file that could not be
/// read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file is not valid, or uses what is not supported.
    Syntax {
        /// The file, as given.
        file: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column in characters, from 1.
        column: usize,
        /// What was expected, and what was found.
        message: String,
    },
    /// Reading a `.x` file or writing a `.rs` file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// [`Builder::compile`] ran outside a build script.
    NoOutDir,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax {
                file,
                line,
                column,
                message,
            } => write!(f, "{}:{line}:{column}: {message}", file.display()),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::NoOutDir => write!(
                f,
                "OUT_DIR is not set: call compile() from build.rs, or use generate_to(dir)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Generation settings.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub max_list_len: u32,
    /// Constants given by the build script, as `#define`s before the file.
    pub defines: Vec<(String, i64)>,
    pub crate_path: String,
    /// Emit each version's typed client.
    pub clients: bool,
    /// Emit each version's server trait and program.
    pub servers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_list_len: 1 << 20,
            defines: Vec::new(),
            crate_path: "::peerwire".to_owned(),
            clients: true,
            servers: true,
        }
    }
}

/// Compiles `.x` files to Rust, from a build script like `prost-build`.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    files: Vec<PathBuf>,
    options: Options,
}

impl Builder {
    /// A builder with no files, lists of at most 1,048,576 nodes, and
    /// generated code that names the runtime `::peerwire`.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds a `.x` file; each gives one `.rs` file named after it.
    pub fn file(mut self, path: impl AsRef<Path>) -> Builder {
        self.files.push(path.as_ref().to_owned());
        self
    }

    /// The most nodes a linked list may have when decoded (default
    /// 1,048,576); a longer list is refused with
    /// `DecodeErrorKind::LengthOverBound`.
    pub fn max_list_len(mut self, max: u32) -> Builder {
        self.options.max_list_len = max;
        self
    }

    /// Defines the numeric constant `name`, as a `#define` before every
    /// file: for names a `.x` file takes from C headers through `%#include`
    /// or `%#define` lines, which the compiler does not read (such as
    /// `MNTPATHLEN` or `UNIX_PATH_MAX`).
    pub fn define(mut self, name: &str, value: i64) -> Builder {
        self.options.defines.push((name.to_owned(), value));
        self
    }

    /// The path by which generated code names peerwire (default
    /// `::peerwire`; `crate` inside peerwire itself).
    pub fn crate_path(mut self, path: &str) -> Builder {
        self.options.crate_path = path.to_owned();
        self
    }

    /// Whether each program version gets its typed client `<Version>Client`
    /// (default true). The types and the program, version and
    /// [`Procedure`](crate::Procedure) constants are generated either way.
    pub fn clients(mut self, clients: bool) -> Builder {
        self.options.clients = clients;
        self
    }

    /// Whether each program version gets its server trait
    /// `<Version>Server` and the [`Program`](crate::server::Program)
    /// `<Version>Program` that serves it (default true): false for a
    /// program this crate only calls.
    pub fn servers(mut self, servers: bool) -> Builder {
        self.options.servers = servers;
        self
    }

    /// Generates every file into `dir` (`kv.x` becomes `dir/kv.rs`), and
    /// prints `cargo:rerun-if-changed` for each `.x` file.
    pub fn generate_to(&self, dir: impl AsRef<Path>) -> Result<(), Error> {
        for file in &self.files {
            println!("cargo:rerun-if-changed={}", file.display());
            let rust = self.generate(file)?;
            let stem = file.file_stem().unwrap_or(file.as_os_str());
            let out = dir.as_ref().join(stem).with_extension("rs");
            std::fs::write(&out, rust).map_err(|source| Error::Io { path: out, source })?;
        }
        Ok(())
    }

    /// Generates every file into `OUT_DIR`, for a build script.
    pub fn compile(&self) -> Result<(), Error> {
        let dir = std::env::var_os("OUT_DIR").ok_or(Error::NoOutDir)?;
        self.generate_to(dir)
    }

    /// The formatted Rust for one `.x` file.
    pub fn generate(&self, file: &Path) -> Result<String, Error> {
        let src = std::fs::read_to_string(file).map_err(|source| Error::Io {
            path: file.to_owned(),
            source,
        })?;
        self.generate_source(file, &src)
    }

    /// The formatted Rust for `src`, the text of `.x` file `file` (named in
    /// errors and in the generated header).
    pub fn generate_source(&self, file: &Path, src: &str) -> Result<String, Error> {
        let tokens = compile(src, &self.options).map_err(|f| {
            let (line, column) = line_column(src, f.at);
            Error::Syntax {
                file: file.to_owned(),
                line,
                column,
                message: f.message,
            }
        })?;
        let parsed: syn::File = syn::parse2(tokens).map_err(|e| Error::Syntax {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message: format!("generated code does not parse (a bug in xdrgen): {e}"),
        })?;
        let name = file
            .file_name()
            .unwrap_or(file.as_os_str())
            .to_string_lossy();
        Ok(format!(
            "// Generated by peerwire::xdrgen from {name}. Do not edit.\n\n{}",
            prettyplease::unparse(&parsed)
        ))
    }
}

fn compile(src: &str, options: &Options) -> Result<proc_macro2::TokenStream, lex::Fault> {
    let mut pre = lex::preprocess(src)?;
    let given = options.defines.iter().map(|(name, value)| lex::Define {
        name: name.clone(),
        value: value.to_string(),
        at: 0,
    });
    pre.defines.splice(0..0, given);
    let tokens = lex::lex(&pre.text)?;
    let uses_netobj = tokens
        .iter()
        .any(|t| t.tok == lex::Tok::Ident("netobj".into()));
    let mut defs = parse::Parser::new(tokens).file()?;
    // rpcgen's library type `netobj` (xdr_netobj: opaque<MAX_NETOBJ_SZ>),
    // which NLM and NFS ACL files use without defining it.
    if uses_netobj && !defs.iter().any(|d| d.name == "netobj") {
        defs.insert(0, netobj());
    }
    emit::Gen::new(&defs, &pre.defines, options)?.file()
}

fn netobj() -> parse::Def {
    parse::Def {
        name: "netobj".into(),
        at: 0,
        doc: Some(
            "rpcgen's library type `netobj`: opaque data of at most 1,024 bytes (`MAX_NETOBJ_SZ`)."
                .into(),
        ),
        kind: parse::DefKind::Typedef(parse::Field {
            name: "netobj".into(),
            at: 0,
            kind: parse::FieldKind::Opaque(Some(parse::Value::Number(1024))),
            doc: None,
        }),
    }
}

/// Line and column (both from 1, the column in characters) of byte `at`.
fn line_column(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

#[cfg(test)]
mod tests;
