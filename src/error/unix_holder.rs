//! [`UnixHolder`]: what holds a Unix socket path that a server may not
//! take.

use std::fmt;

/// What holds a Unix socket path ([`Error::UnixInUse`](super::Error::UnixInUse)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnixHolder {
    /// A server accepts connections on the socket file now.
    LiveServer,
    /// Another peerwire server holds the path's lock file
    /// (`PATH.lock`), so it is starting or serving there.
    Locked,
    /// The path is not a socket file (a regular file, a directory, a
    /// symbolic link…); it is never removed.
    NotASocket,
}

impl fmt::Display for UnixHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnixHolder::LiveServer => {
                "a live server answers on it (stop it, or choose another path)"
            }
            UnixHolder::Locked => "another peerwire server holds its lock file (PATH.lock)",
            UnixHolder::NotASocket => "the path exists and is not a socket file",
        })
    }
}
