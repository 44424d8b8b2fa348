//! Fresh directories for a test's files, removed when dropped.

// Each binary uses some of these helpers, and a helper one binary does not
// use would warn there.
#![allow(dead_code)]

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A directory of the test's own under the system's temporary directory;
/// it goes, with everything in it, when dropped (also when the test
/// panics). It derefs to its path.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes `peerwire-TAG-PID-RANDOM`. It is created atomically and never
    /// is one that exists already (another test's, or another run's); its
    /// random part comes from the standard library's hasher keys, never
    /// from a clock. The name stays short, for the Unix sockets made in it.
    pub fn new(tag: &str) -> TempDir {
        loop {
            // Each `RandomState` has keys of its own, so each try a name.
            let random = RandomState::new().hash_one(tag);
            let dir = std::env::temp_dir().join(format!(
                "peerwire-{tag}-{}-{random:016x}",
                std::process::id()
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => return TempDir(dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("creating {}: {e}", dir.display()),
            }
        }
    }

    /// The names in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
