//! Prints the Rust that `peerwire::xdrgen` generates for a `.x` file, as
//! `rpcgen -c` prints C, so a user can read what they get:
//!
//! ```text
//! cargo run --example xdrgen --features xdrgen -- proto/kv.x
//! ```
//!
//! An invalid file prints `file:line:column: message` and exits with 1.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("usage: xdrgen FILE.x...");
        return ExitCode::from(2);
    }
    let builder = peerwire::xdrgen::Builder::new();
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
