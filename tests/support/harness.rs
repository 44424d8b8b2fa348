//! The harness of the test binaries whose `main` prepares an environment
//! first (namespaces, daemons) and then hands their trials to libtest-mimic:
//! the trials, which of them the command line selects, what to say when the
//! environment cannot be made, and a guard that kills a child process with
//! its test.

// Each binary uses some of these helpers, and a helper one binary does not
// use would warn there (rpcgen enters no namespace, and the netns sandbox
// is made whatever trials are selected).
#![allow(dead_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::panic;
use std::process::Command;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

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

/// Whether libtest's filter and `--skip` select `name`.
pub fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| {
        if args.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

/// The threads of this process, from /proc/self/status: namespaces are
/// entered while it has one.
pub fn thread_count() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// What a binary's trials need of the machine (namespaces, daemons, C
/// tools), as its messages name it when the machine cannot give it.
pub struct Requirement {
    /// The trials, as the messages call them: `interop tests`.
    pub trials: &'static str,
    /// The variable that, set to `1` (CI sets it), makes what would be a
    /// skip a failure.
    pub env: &'static str,
}

impl Requirement {
    /// True when the variable is `1`: the trials must run, and what stops
    /// them is a failure, never a skip.
    pub fn required(&self) -> bool {
        std::env::var_os(self.env).is_some_and(|v| v == "1")
    }

    /// Says, ruled off so that nobody misses it, that the trials are
    /// skipped and why.
    pub fn print_skip_banner(&self, reason: &str) {
        let rule = "!".repeat(78);
        eprintln!(
            "{rule}\n{} skipped: {reason} (set {}=1 to make this fatal)\n{rule}",
            self.trials, self.env
        );
    }

    /// Says that the trials cannot run, though [`Requirement::required`];
    /// the caller then exits with a failure.
    pub fn print_cannot_run(&self, reason: &str) {
        eprintln!(
            "{} cannot run: {reason}\n{}=1 is set, so this is a failure, not a skip.",
            self.trials, self.env
        );
    }
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
