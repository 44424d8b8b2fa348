//! Prints the Rust that `peerwire::xdrgen` generates for a `.x` file, as
//! `rpcgen -c` prints C, so a user can read what they get:
//!
//! ```text
//! cargo run --example xdrgen --features xdrgen -- proto/kv.x
//! ```
//!
//! `-D NAME=VALUE` defines a numeric constant the file takes from a C
//! header (`Builder::define`). An invalid file prints
//! `file:line:column: message` and exits with 1.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut builder = peerwire::xdrgen::Builder::new();
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-D" {
            let define = args.next().unwrap_or_default();
            let parsed = define
                .split_once('=')
                .and_then(|(name, value)| Some((name, parse_number(value)?)));
            let Some((name, value)) = parsed else {
                eprintln!("-D expects NAME=NUMBER, got `{define}`");
                return ExitCode::from(2);
            };
            builder = builder.define(name, value);
        } else {
            files.push(PathBuf::from(arg));
        }
    }
    if files.is_empty() {
        eprintln!("usage: xdrgen [-D NAME=NUMBER]... FILE.x...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for file in &files {
        match builder.generate(file) {
            Ok(rust) => print!("{rust}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn parse_number(s: &str) -> Option<i64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
