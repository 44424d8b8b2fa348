//! Listening on a Unix socket path, without ever taking a live one.
//!
//! Placing the socket file, in order:
//!
//! 1. **Lock** `PATH.lock` (created with mode 0600, `flock` exclusive,
//!    without waiting). Another peerwire server starting or serving on
//!    the same path holds it: [`UnixHolder::Locked`]. The lock is what
//!    makes the next steps race-free between peerwire servers: two
//!    started in the same instant cannot both find the path stale and
//!    replace each other.
//! 2. **Probe** what is at `PATH`: nothing, fine; something other than a
//!    socket: [`UnixHolder::NotASocket`], never removed; a socket file on
//!    which a `connect` succeeds: [`UnixHolder::LiveServer`], never
//!    stolen (this also covers servers that do not use our lock, such as
//!    glusterd); a socket file on which `connect` is refused: stale, to be
//!    replaced.
//! 3. **Bind** a new socket to a temporary name in the same directory,
//!    made of the pid and a random part (`.PATH-NAME.PID.RANDOM`), so two
//!    processes never share one; **chmod** it to
//!    [`ListenOptions::unix_mode`](crate::ListenOptions::unix_mode); then
//!    **listen**. Until `listen`, a connect to the file is refused, so no
//!    connection ever arrives under the umask's looser mode.
//! 4. **Rename** the temporary name over `PATH`: atomic, so a stale file
//!    is replaced without a moment in which clients find no file.
//!
//! When `PATH` is too long to leave room for the temporary name, step 3
//! binds `PATH` itself, after removing a stale file (still under the lock,
//! and still chmod before listen), and the replacement is no longer atomic
//! for clients.
//!
//! On drop, the socket file is removed only if `PATH` still names the file
//! we placed (same device and inode): a file that another server put there
//! since is left alone. Then the lock file is removed and the lock
//! released; a process that opened the lock file before its removal finds,
//! after taking its lock, that the path no longer names that file, and
//! starts over.
//!
//! The directory should not be writable by others (as `/run` is not): a
//! process that can write to it can rename files in it whatever their mode.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};

use super::ListenOptions;
use crate::addr::MAX_UNIX_PATH;
use crate::error::{Error, UnixHolder};
use crate::sock::{self, FileAt, PeerCredentials, UnixLock};

/// A listening Unix stream socket whose file this process placed. The file
/// (and its lock file) is removed when this is dropped, if it is still
/// ours; see the module docs of `listen_unix` for the steps.
#[derive(Debug)]
pub struct UnixSocketListener {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file we placed: (device, inode).
    placed: Option<(u64, u64)>,
    /// Dropped after the socket file is removed (fields drop after
    /// `Drop::drop`).
    _lock: HeldLock,
}

/// The lock on `PATH.lock`; removes the lock file, while still holding
/// the lock and only if the path still names it, when dropped.
#[derive(Debug)]
struct HeldLock {
    lock: UnixLock,
    path: PathBuf,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.lock.is_at(&self.path).unwrap_or(false) {
            let _ = sock::unlink(&self.path);
        }
    }
}

impl UnixSocketListener {
    /// The socket file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts a connection, with the credentials of the process that
    /// connected (`SO_PEERCRED`). Cancel-safe.
    pub async fn accept(&self) -> io::Result<(UnixStream, PeerCredentials)> {
        let (stream, _) = self.listener.accept().await?;
        let credentials = sock::peer_credentials(&stream)?;
        Ok((stream, credentials))
    }

    /// True when the path still names the socket file we placed.
    pub fn is_in_place(&self) -> bool {
        match (sock::file_at(&self.path), self.placed) {
            (Ok(FileAt::Socket { dev, ino }), Some(placed)) => placed == (dev, ino),
            _ => false,
        }
    }
}

impl Drop for UnixSocketListener {
    fn drop(&mut self) {
        if self.is_in_place()
            && let Err(error) = sock::unlink(&self.path)
        {
            tracing::warn!(path = %self.path.display(), %error, "could not remove the socket file");
        }
    }
}

/// Listens on the Unix socket `path`: the file is created with
/// [`ListenOptions::unix_mode`], a stale file is replaced, and a live one
/// (or a path held by another peerwire server, or a file that is not a
/// socket) is [`Error::UnixInUse`]. The file is removed when the listener
/// is dropped, if it is still ours. `backlog` and `unix_mode` are the
/// options used; the TCP-only ones are ignored.
///
/// Must be called inside a tokio runtime.
pub fn listen_unix(path: &Path, options: &ListenOptions) -> Result<UnixSocketListener, Error> {
    let failed = |what: &'static str| {
        move |error| Error::UnixListen {
            path: path.to_path_buf(),
            what,
            error: Arc::new(error),
        }
    };
    let in_use = |holder| Error::UnixInUse {
        path: path.to_path_buf(),
        holder,
    };
    if options.unix_mode > 0o7777 {
        return Err(crate::ConfigError::UnixMode {
            mode: options.unix_mode,
        }
        .into());
    }
    crate::addr::Address::unix(path)?;
    let lock_path = with_suffix(path, ".lock");
    // 1. Lock.
    let lock = loop {
        let lock = sock::try_lock(&lock_path)
            .map_err(failed("lock PATH.lock"))?
            .ok_or_else(|| in_use(UnixHolder::Locked))?;
        if lock.is_at(&lock_path).map_err(failed("lock PATH.lock"))? {
            // From here on, any error removes the lock file again.
            break HeldLock {
                lock,
                path: lock_path,
            };
        }
        // The server that held it removed it while we waited: again.
    };
    // 2. Probe.
    let stale = match sock::file_at(path).map_err(failed("look at the path"))? {
        FileAt::Nothing => false,
        FileAt::Other => return Err(in_use(UnixHolder::NotASocket)),
        FileAt::Socket { .. } => match sock::probe_unix(path) {
            Ok(()) => return Err(in_use(UnixHolder::LiveServer)),
            Err(error) if sock::is_refused(&error) => true,
            // Removed between the look and the probe: nothing there now.
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => return Err(failed("probe the existing socket file")(error)),
        },
    };
    if stale {
        tracing::info!(path = %path.display(), "replacing a stale socket file (nothing answers on it)");
    }
    // 3. Bind a temporary name, chmod, listen; 4. rename.
    let socket = sock::unix_socket().map_err(failed("create a socket"))?;
    let temporary = temporary_name(path);
    let fits = temporary.as_os_str().len() <= MAX_UNIX_PATH;
    let bound = if fits {
        temporary.as_path()
    } else {
        if stale {
            sock::unlink(path).map_err(failed("remove the stale socket file"))?;
        }
        path
    };
    sock::bind_unix(&socket, bound).map_err(failed("bind the socket"))?;
    let placed = (|| {
        sock::chmod(bound, options.unix_mode).map_err(failed("set the socket file's mode"))?;
        let listener =
            sock::listen_unix(socket, options.backlog).map_err(failed("listen on the socket"))?;
        if fits {
            sock::rename(bound, path).map_err(failed("rename the socket file into place"))?;
        }
        Ok::<_, Error>(listener)
    })();
    let listener = match placed {
        Ok(listener) => listener,
        Err(error) => {
            let _ = sock::unlink(bound);
            return Err(error);
        }
    };
    let placed = match sock::file_at(path) {
        Ok(FileAt::Socket { dev, ino }) => Some((dev, ino)),
        _ => None,
    };
    Ok(UnixSocketListener {
        listener,
        path: path.to_path_buf(),
        placed,
        _lock: lock,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `.NAME.PID.RANDOM` beside `path`: never shared by two processes, nor by
/// two listeners of one.
fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = format!(
        ".{name}.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    match path.parent() {
        Some(dir) => dir.join(temporary),
        None => PathBuf::from(temporary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_sit_beside_the_path_and_differ() {
        let path = Path::new("/run/peerd.socket");
        let a = temporary_name(path);
        let b = temporary_name(path);
        assert_eq!(a.parent(), Some(Path::new("/run")));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!(".peerd.socket.{}.", std::process::id())),
            "{name}"
        );
        assert_ne!(a, b, "the random part differs");
        assert_eq!(
            temporary_name(Path::new("x.socket")).parent(),
            Some(Path::new(""))
        );
    }
}
