//! [`Sources`], the configured source addresses with the [`FamilyPolicy`]
//! for a family that has none, and the [`Role`] an address plays.

use std::fmt;

use super::{Family, ScopedIp};

/// The configured source addresses: at most one per family.
///
/// The destination's family selects the source. A v6 source may be
/// link-local, with a scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    v4: Option<ScopedIp>,
    v6: Option<ScopedIp>,
}

impl Sources {
    /// No sources: the kernel chooses for every destination.
    pub fn new() -> Sources {
        Sources::default()
    }

    /// Sets the source for the address's family, replacing any earlier one.
    pub fn with(mut self, source: impl Into<ScopedIp>) -> Sources {
        let source = source.into();
        match source.family() {
            Family::V4 => self.v4 = Some(source),
            Family::V6 => self.v6 = Some(source),
        }
        self
    }

    /// The source for a family.
    pub fn for_family(&self, family: Family) -> Option<&ScopedIp> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    /// True when no source is configured.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// What to do with a destination whose family has no configured source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FamilyPolicy {
    /// Fail with [`crate::Error::NoSourceForFamily`] when a source is
    /// configured for the other family only. With no source at all, the
    /// kernel chooses.
    #[default]
    Strict,
    /// Let the kernel choose the source for a family with none configured.
    KernelChooses,
}

/// Which end of a connection an address belongs to, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The address we bind before connecting.
    Source,
    /// The address we connect to.
    Destination,
    /// An address we listen on.
    Listen,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Destination => "destination",
            Role::Listen => "listen address",
        })
    }
}
