//! Addresses, scopes, families and canonical comparison. Pure: no sockets.
//!
//! The text forms follow RFC 4007 §11 for scoped IPv6 addresses:
//!
//! | form                     | type                    |
//! |--------------------------|-------------------------|
//! | `192.0.2.10`             | [`ScopedIp`]            |
//! | `2001:db8::10`           | [`ScopedIp`]            |
//! | `fe80::a%eth0`           | [`ScopedIp`], scope by name  |
//! | `fe80::a%3`              | [`ScopedIp`], scope by index |
//! | `192.0.2.10:24007`       | [`Endpoint`]            |
//! | `[2001:db8::10]:24007`   | [`Endpoint`]            |
//! | `[fe80::a%eth0]:24007`   | [`Endpoint`]            |
//! | `unix:/run/x.socket`     | [`Address`] (or an endpoint) |
//!
//! Display gives back the same text (for addresses already in the canonical
//! RFC 5952 form). A scope given as a name stays a name here: it is resolved
//! to an interface index only when a socket is made, so a configuration can
//! be parsed on a host where the interface does not exist yet.

mod address;
mod canonical;
mod endpoint;
mod ip;
mod parse_error;
mod sources;

pub(crate) use address::UNIX_NO_ADDR;
pub use address::{Address, MAX_UNIX_PATH, UNIX_PREFIX};
pub use canonical::{CanonicalIp, canonical_net, canonical_socket_addr};
pub use endpoint::Endpoint;
pub use ip::{Family, MAX_INTERFACE_NAME, Scope, ScopedIp, needs_scope};
pub use parse_error::{AddrParseError, AddrParseErrorKind};
pub use sources::{FamilyPolicy, Role, Sources};
