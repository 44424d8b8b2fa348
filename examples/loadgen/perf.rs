//! `--perf-ctl` and `--perf-ack`: `perf stat --control`'s FIFOs, so that
//! perf counts the measured window only.

use crate::Args;

/// `perf stat --control`'s FIFOs.
pub struct PerfControl {
    ctl: std::fs::File,
    ack: Option<std::fs::File>,
}

impl PerfControl {
    /// Opens the FIFOs (each open waits for perf to open its end).
    pub fn open(args: &Args) -> Option<PerfControl> {
        let ctl = std::fs::OpenOptions::new()
            .write(true)
            .open(args.perf_ctl.as_ref()?)
            .expect("the perf control FIFO");
        let ack =
            (args.perf_ack.as_ref()).map(|ack| std::fs::File::open(ack).expect("the ack FIFO"));
        Some(PerfControl { ctl, ack })
    }

    /// Sends `command`; waits for perf's ack.
    pub fn send(&mut self, command: &str) {
        use std::io::{Read, Write};
        writeln!(self.ctl, "{command}").expect("perf's control FIFO");
        if let Some(ack) = &mut self.ack {
            let mut ok = [0u8; 4];
            ack.read_exact(&mut ok).expect("perf's ack");
        }
    }
}
