//! Log lines written while a test runs, captured for asserting on them or
//! for showing them when it fails.

// Each binary uses some of these helpers, and a helper one binary does not
// use would warn there.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::subscriber::{DefaultGuard, NoSubscriber};
use tracing::{Dispatch, Level};

/// The text of the events captured, shared by every clone.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures warnings and errors on this thread until the guard is
    /// dropped.
    pub fn capture() -> (Logs, DefaultGuard) {
        Logs::capture_at(Level::WARN)
    }

    /// Captures events up to `level` on this thread until the guard is
    /// dropped. On a current-thread runtime that is every task's.
    pub fn capture_at(level: Level) -> (Logs, DefaultGuard) {
        second_dispatcher();
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// What was captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// tracing caches whether a callsite is enabled, for every thread. While
/// only one dispatcher exists (this thread's), tracing-core 0.1 caches
/// the interest of a callsite first reached on *another* thread from that
/// thread's default, which for a test without a subscriber is "never": a
/// span or event first met by a concurrent test would then be lost here.
/// A second dispatcher that lives for the whole run makes tracing combine
/// every dispatcher's interest instead, and ask again at each event.
fn second_dispatcher() {
    static SECOND: OnceLock<Dispatch> = OnceLock::new();
    SECOND.get_or_init(|| Dispatch::new(NoSubscriber::default()));
}
