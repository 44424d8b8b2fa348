//! The programs and versions a server serves.

/// The programs and versions a server serves. A server serves a handful,
/// so a sorted list searched in order is faster per call than a map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    /// (program, version), sorted, without duplicates.
    entries: Vec<(u32, u32)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a program version.
    pub fn add(&mut self, program: u32, version: u32) {
        if let Err(at) = self.entries.binary_search(&(program, version)) {
            self.entries.insert(at, (program, version));
        }
    }

    /// True when the program version is served.
    pub fn contains(&self, program: u32, version: u32) -> bool {
        self.entries.contains(&(program, version))
    }

    /// The lowest and highest version of a program, if it is served.
    pub fn versions(&self, program: u32) -> Option<(u32, u32)> {
        let mut versions = self
            .entries
            .iter()
            .filter(|(p, _)| *p == program)
            .map(|(_, v)| *v);
        let low = versions.next()?;
        Some((low, versions.next_back().unwrap_or(low)))
    }
}
