//! [`AddrParseError`]: an address's text that did not parse, and why.

use std::fmt;

/// What was wrong with an address's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrParseErrorKind {
    /// The IP address itself does not parse.
    InvalidIp,
    /// Nothing follows `%`.
    EmptyScope,
    /// The scope is neither a valid interface name nor an index from 1 up.
    InvalidScope,
    /// A scope was given for an IPv4 address.
    ScopeOnIpv4,
    /// An endpoint needs a `:port`.
    MissingPort,
    /// The port is not a number from 0 to 65535.
    InvalidPort,
    /// `[` without `]`.
    UnclosedBracket,
    /// An IPv6 endpoint must be written `[address]:port`.
    MissingBrackets,
    /// Nothing follows `unix:`.
    EmptyUnixPath,
    /// A Unix socket path longer than [`MAX_UNIX_PATH`](super::MAX_UNIX_PATH) bytes.
    UnixPathTooLong,
    /// A Unix socket path with a NUL byte.
    InvalidUnixPath,
}

impl fmt::Display for AddrParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrParseErrorKind::InvalidIp => "not an IP address",
            AddrParseErrorKind::EmptyScope => "empty scope after '%'",
            AddrParseErrorKind::InvalidScope => {
                "scope is not an interface name (1-15 characters) or an index from 1"
            }
            AddrParseErrorKind::ScopeOnIpv4 => "only IPv6 addresses take a scope",
            AddrParseErrorKind::MissingPort => "missing ':port'",
            AddrParseErrorKind::InvalidPort => "port is not a number from 0 to 65535",
            AddrParseErrorKind::UnclosedBracket => "'[' without ']'",
            AddrParseErrorKind::MissingBrackets => {
                "an IPv6 address with a port is written [address]:port"
            }
            AddrParseErrorKind::EmptyUnixPath => "empty path after 'unix:'",
            AddrParseErrorKind::UnixPathTooLong => {
                "a Unix socket path is at most 107 bytes (sun_path)"
            }
            AddrParseErrorKind::InvalidUnixPath => "a Unix socket path cannot hold a NUL byte",
        })
    }
}

/// An address that did not parse, with the text and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrParseError {
    input: String,
    kind: AddrParseErrorKind,
}

impl AddrParseError {
    pub(super) fn new(input: &str, kind: AddrParseErrorKind) -> AddrParseError {
        // Bound what an error may hold: the input can come from anywhere.
        let input: String = input.chars().take(128).collect();
        AddrParseError { input, kind }
    }

    /// The reason.
    pub fn kind(&self) -> AddrParseErrorKind {
        self.kind
    }

    /// The text that failed to parse (at most 128 characters of it).
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address {:?}: {}", self.input, self.kind)
    }
}

impl std::error::Error for AddrParseError {}
