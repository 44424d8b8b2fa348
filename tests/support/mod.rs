//! Helpers shared by the integration tests.
//!
//! Each test binary that needs them says `mod support;`. Not every binary uses
//! every helper, so unused ones must not warn.
#![allow(dead_code)]

pub mod netns;
pub mod peerd;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child of `cmd` get SIGKILL when the thread that spawns it
/// ends (`PR_SET_PDEATHSIG`), so a failed test leaves no process behind.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec; it makes
    // one async-signal-safe system call and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let rc = nix::libc::prctl(
                nix::libc::PR_SET_PDEATHSIG,
                nix::libc::SIGKILL as nix::libc::c_ulong,
            );
            if rc == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    }
}
