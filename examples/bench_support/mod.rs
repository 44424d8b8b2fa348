//! Helpers shared by the benchmark examples (`loadgen`, `connscale`,
//! `soak`): CPU pinning, the allocator setting, RLIMIT_NOFILE and /proc
//! readings. Not an example of its own (no `main.rs`).

#![allow(dead_code)]

use std::io;

/// glibc's allocator setting for every benchmark, in both modes.
///
/// By default glibc serves blocks of 128 KiB and more with `mmap` and gives
/// them back with `munmap` on free (the threshold then adapts, but only up
/// to 32 MiB and only after a free), and trims the top of the heap past
/// 128 KiB. With 1 MiB payloads that means every record buffer is fresh
/// memory: 256 page faults per MiB, on each side, per call. Raising the
/// mmap threshold to 64 MiB and the trim threshold to 512 MiB keeps freed
/// memory in the heap for reuse. The same as starting the process with
/// `MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=536870912`.
pub fn retain_freed_memory() -> bool {
    // SAFETY: mallopt only changes allocator parameters; it is called
    // before the benchmark starts its threads.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 64 << 20) == 1
            && nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, 512 << 20) == 1
    }
}

/// Pins the calling thread to `cpu`. Returns the error text on failure.
pub fn pin_to(cpu: usize) -> Result<(), String> {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| e.to_string())?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("sched_setaffinity({cpu}): {e}"))
}

/// CPUs online, by `sysconf`.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Raises RLIMIT_NOFILE's soft and hard limits to at least `want`
/// (capped by /proc/sys/fs/nr_open). Returns the soft limit in force and a
/// note when it is below `want`.
pub fn raise_nofile(want: u64) -> (u64, Option<String>) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    if soft >= want {
        return (soft, None);
    }
    let target = want.min(nr_open);
    let new_hard = hard.max(target);
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it, take the
    // soft limit up to the hard one.
    let result = setrlimit(Resource::RLIMIT_NOFILE, target, new_hard);
    if result.is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, target.min(hard), hard);
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((soft, hard));
    let mut note = None;
    if soft < want {
        note = Some(format!(
            "RLIMIT_NOFILE is {soft} (hard {hard}), below the {want} wanted{}{}",
            if nr_open < want {
                format!("; fs.nr_open caps it at {nr_open}")
            } else {
                String::new()
            },
            match result {
                Err(e) => format!("; raising the hard limit failed: {e} (needs CAP_SYS_RESOURCE)"),
                Ok(()) => String::new(),
            }
        ));
    }
    (soft, note)
}

/// Resident set size of this process, in bytes (VmRSS of /proc/self/status).
pub fn rss_bytes() -> u64 {
    status_field("VmRSS:").unwrap_or(0) * 1024
}

fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Open file descriptors of this process.
pub fn fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// Threads of this process.
pub fn thread_count() -> u64 {
    status_field("Threads:").unwrap_or(0)
}

/// One line of machine facts for the results.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".into(), |s| s.trim().to_string());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb >> 20);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} CPUs ({model}), {mem} GiB, Linux {}",
        cpus(),
        kernel.trim()
    )
}
