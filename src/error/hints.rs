//! The errno hints: an OS error, with what it usually means here and what
//! to do about it, for the messages of [`Error`](super::Error).

use std::io;

use crate::addr::{Endpoint, ScopedIp};

/// An OS error on a Unix socket path, with what it usually means.
pub(super) fn explain_unix(error: &io::Error) -> String {
    let hint = match error.raw_os_error() {
        Some(nix::libc::ENOENT) => " (no socket file there: is the server running?)",
        Some(nix::libc::ECONNREFUSED) => {
            " (nothing listens on the socket file: it is stale, the server has stopped)"
        }
        Some(nix::libc::EACCES) | Some(nix::libc::EPERM) => {
            " (the socket file's mode, or a directory on its path, does not let us in)"
        }
        Some(nix::libc::ENAMETOOLONG) => " (a Unix socket path is at most 107 bytes)",
        _ => "",
    };
    format!("{error}{hint}")
}

fn os_code(error: &io::Error) -> Option<i32> {
    error.raw_os_error()
}

pub(super) fn explain_bind(error: &io::Error, source: &ScopedIp) -> String {
    use nix::libc;
    match os_code(error) {
        Some(libc::EADDRNOTAVAIL) => format!(
            "{error} (not assigned to this host, or still tentative during DAD; see ConnectOptions::wait_tentative and ConnectOptions::freebind)"
        ),
        Some(libc::EINVAL) if source.is_link_local() => format!(
            "{error} (a link-local source needs the scope of the interface it is on, such as {}%eth0)",
            source.ip()
        ),
        Some(libc::ENODEV) => format!("{error} (the scope names no interface on this host)"),
        Some(libc::EACCES) => {
            format!("{error} (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
        }
        _ => error.to_string(),
    }
}

pub(super) fn explain_connect(error: &io::Error, destination: &Endpoint) -> String {
    use nix::libc;
    match os_code(error) {
        Some(libc::EINVAL) if destination.host().is_link_local() => format!(
            "{error} (a link-local destination needs the scope of the interface that reaches it)"
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "{error} (the source's ports toward this destination are all in use, or the source left this host)"
        ),
        _ => error.to_string(),
    }
}

pub(super) fn explain_listen(error: &io::Error, address: &Endpoint) -> String {
    use nix::libc;
    match os_code(error) {
        Some(libc::EADDRNOTAVAIL) => {
            format!("{error} (not assigned to this host, or still tentative during DAD)")
        }
        Some(libc::EADDRINUSE) => format!("{error} (another socket listens on {address})"),
        Some(libc::EACCES) => {
            format!("{error} (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
        }
        _ => error.to_string(),
    }
}
