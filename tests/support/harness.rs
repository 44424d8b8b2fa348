//! The harness of the test binaries whose `main` prepares an environment
//! first (namespaces, daemons) and then hands their trials to libtest-mimic,
//! and a guard that kills a child process with its test.

use std::io;
use std::os::unix::process::CommandExt;
use std::panic;
use std::process::Command;

use libtest_mimic::{Completion, Failed, Trial};

/// The trials of a harness whose `main` prepares an environment first
/// (namespaces, daemons). With `skipped` (the reason it could not be made),
/// every trial is reported ignored with that reason, and none runs even
/// under `--ignored`. A panic fails the trial with its message.
pub fn trials(tests: Vec<(&'static str, fn())>, skipped: Option<&str>) -> Vec<Trial> {
    tests
        .into_iter()
        .map(|(name, test)| match skipped {
            None => Trial::test(name, move || run(test)),
            Some(reason) => {
                let reason = reason.to_owned();
                Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                    .with_ignored_flag(true)
            }
        })
        .collect()
}

/// Runs one test, turning a panic into a failure carrying its message.
fn run(test: fn()) -> Result<(), Failed> {
    panic::catch_unwind(test).map_err(|payload| Failed::from(panic_message(&*payload)))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("test panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("test panicked: {s}")
    } else {
        "test panicked (with a payload that is not a string)".to_owned()
    }
}

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
