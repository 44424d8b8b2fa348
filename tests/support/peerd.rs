//! The `peerd` example's binary, for tests that run it.
//!
//! `CARGO_BIN_EXE_*` exists only for `[[bin]]` targets, not for examples, so
//! the first caller builds it with the cargo that builds the tests, and
//! takes its path from cargo's own report (which follows
//! `CARGO_TARGET_DIR` and the like).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The path of the built `peerd` example; builds it the first time.
pub fn binary() -> &'static Path {
    BINARY.get_or_init(build)
}

fn build() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut command = Command::new(cargo);
    // Cargo gives this test the variables of the package being tested
    // (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...). Build scripts that watch
    // them (ring's does) would see them change between this build and the
    // one that built the test, and each build would redo the other's work.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let per_package = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name);
        if per_package {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["build", "--offline", "--example", "peerd"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the peerd example: {e}"));
    assert!(
        output.status.success(),
        "`cargo build --example peerd` failed ({})",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "peerd")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no peerd executable:\n{stdout}"))
}
