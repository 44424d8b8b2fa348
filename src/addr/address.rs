//! [`Address`]: where a peer is, on the network or on this host.
//!
//! | form                     | variant                              |
//! |--------------------------|--------------------------------------|
//! | `192.0.2.10:24007`       | [`Address::Inet`] (any [`Endpoint`]) |
//! | `[fe80::a%eth0]:24007`   | [`Address::Inet`]                    |
//! | `unix:/run/x.socket`     | [`Address::Unix`]                    |
//!
//! A Unix path is taken as written: `unix:run/x.socket` is relative to the
//! working directory of the process that uses it. The abstract namespace
//! (a leading NUL byte) is not supported.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{AddrParseError, AddrParseErrorKind, Endpoint};

/// The prefix that marks a Unix socket path in an address's text.
pub const UNIX_PREFIX: &str = "unix:";

/// The longest Unix socket path, in bytes: `sun_path` is 108 bytes on
/// Linux, one of which is the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// What a connection on a Unix socket shows where a socket address is
/// expected (observed, local, a link's ends): `0.0.0.0:0`.
pub(crate) const UNIX_NO_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// Where a peer is: an IP endpoint, or a Unix stream socket's path.
///
/// Parses from and displays as `192.0.2.10:24007`, `[2001:db8::10]:24007`
/// or `unix:/run/glusterd.socket`:
///
/// ```
/// use peerwire::Address;
///
/// let gluster: Address = "unix:/run/glusterd.socket".parse()?;
/// assert_eq!(gluster.as_unix().unwrap().to_str(), Some("/run/glusterd.socket"));
/// assert_eq!(gluster.to_string(), "unix:/run/glusterd.socket");
///
/// let tcp: Address = "192.0.2.10:24007".parse()?;
/// assert_eq!(tcp.as_inet().unwrap().port(), 24007);
/// # Ok::<(), peerwire::AddrParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IP address and port (TCP).
    Inet(Endpoint),
    /// The path of a Unix stream socket.
    Unix(PathBuf),
}

impl Address {
    /// A Unix socket address. The path is checked as the parser checks it:
    /// not empty, at most [`MAX_UNIX_PATH`] bytes, no NUL byte.
    pub fn unix(path: impl Into<PathBuf>) -> Result<Address, AddrParseError> {
        let path = path.into();
        match check_unix_path(&path) {
            Ok(()) => Ok(Address::Unix(path)),
            Err(kind) => Err(AddrParseError::new(
                &format!("{UNIX_PREFIX}{}", path.display()),
                kind,
            )),
        }
    }

    /// The endpoint, for an IP address.
    pub fn as_inet(&self) -> Option<&Endpoint> {
        match self {
            Address::Inet(endpoint) => Some(endpoint),
            Address::Unix(_) => None,
        }
    }

    /// The path, for a Unix socket.
    pub fn as_unix(&self) -> Option<&Path> {
        match self {
            Address::Inet(_) => None,
            Address::Unix(path) => Some(path),
        }
    }

    /// True for a Unix socket path.
    pub fn is_unix(&self) -> bool {
        matches!(self, Address::Unix(_))
    }

    /// Parses an address, or an IP address alone with `default_port`:
    /// `"192.0.2.10"`, `"192.0.2.10:24007"` and `"unix:/run/x.socket"` all
    /// parse.
    pub fn parse_with_default_port(
        text: &str,
        default_port: u16,
    ) -> Result<Address, AddrParseError> {
        if text.starts_with(UNIX_PREFIX) {
            return text.parse();
        }
        Endpoint::parse_with_default_port(text, default_port).map(Address::Inet)
    }
}

fn check_unix_path(path: &Path) -> Result<(), AddrParseErrorKind> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(AddrParseErrorKind::EmptyUnixPath);
    }
    if bytes.contains(&0) {
        return Err(AddrParseErrorKind::InvalidUnixPath);
    }
    if bytes.len() > MAX_UNIX_PATH {
        return Err(AddrParseErrorKind::UnixPathTooLong);
    }
    Ok(())
}

impl From<Endpoint> for Address {
    fn from(endpoint: Endpoint) -> Address {
        Address::Inet(endpoint)
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Inet(Endpoint::from(addr))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(endpoint) => endpoint.fmt(f),
            Address::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

impl FromStr for Address {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<Address, AddrParseError> {
        match text.strip_prefix(UNIX_PREFIX) {
            Some(path) => check_unix_path(Path::new(path))
                .map(|()| Address::Unix(PathBuf::from(path)))
                .map_err(|kind| AddrParseError::new(text, kind)),
            None => text.parse().map(Address::Inet),
        }
    }
}

impl PartialEq<Endpoint> for Address {
    fn eq(&self, other: &Endpoint) -> bool {
        self.as_inet() == Some(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_paths_parse_and_display_back() {
        for text in [
            "unix:/run/glusterd.socket",
            "unix:relative/x.socket",
            "unix:/a b",
        ] {
            let address: Address = text.parse().unwrap();
            assert!(address.is_unix());
            assert_eq!(address.to_string(), text);
        }
        let address: Address = "unix:/run/x.socket".parse().unwrap();
        assert_eq!(address.as_unix(), Some(Path::new("/run/x.socket")));
        assert_eq!(address.as_inet(), None);
    }

    #[test]
    fn endpoints_parse_as_before() {
        for text in [
            "192.0.2.10:24007",
            "[2001:db8::10]:1",
            "[fe80::a%eth0]:24007",
        ] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address, text.parse::<Endpoint>().unwrap());
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            "192.0.2.10".parse::<Address>().unwrap_err().kind(),
            AddrParseErrorKind::MissingPort
        );
        assert_eq!(
            Address::parse_with_default_port("192.0.2.10", 24007).unwrap(),
            "192.0.2.10:24007".parse::<Endpoint>().unwrap()
        );
        assert!(
            Address::parse_with_default_port("unix:/x", 24007)
                .unwrap()
                .is_unix()
        );
    }

    #[test]
    fn bad_unix_paths_are_refused() {
        let kind = |text: &str| text.parse::<Address>().unwrap_err().kind();
        assert_eq!(kind("unix:"), AddrParseErrorKind::EmptyUnixPath);
        assert_eq!(kind("unix:/a\0b"), AddrParseErrorKind::InvalidUnixPath);
        let long = format!("unix:/{}", "x".repeat(MAX_UNIX_PATH));
        assert_eq!(kind(&long), AddrParseErrorKind::UnixPathTooLong);
        let longest = format!("unix:/{}", "x".repeat(MAX_UNIX_PATH - 1));
        assert!(longest.parse::<Address>().is_ok());
        assert_eq!(
            Address::unix("").unwrap_err().kind(),
            AddrParseErrorKind::EmptyUnixPath
        );
    }
}
