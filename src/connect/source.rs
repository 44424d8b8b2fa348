//! Source selection: the configured source for a destination, and the
//! link-local scope rules, checked before any socket exists.

use crate::addr::{Endpoint, FamilyPolicy, Role, Scope, ScopedIp, Sources};
use crate::error::Error;

/// Picks the source for `destination` and checks the link-local rules.
///
/// Returns `Ok(None)` when the kernel is to choose. Every violation is
/// found here, before any socket exists:
/// - a link-local destination or source without a scope;
/// - source and destination scopes that differ (when both are written the
///   same way; a name against an index is compared once the name is resolved);
/// - under [`FamilyPolicy::Strict`], a destination whose family has no source
///   while the other family has one.
#[doc(hidden)]
pub fn select_source<'a>(
    sources: &'a Sources,
    policy: FamilyPolicy,
    destination: &Endpoint,
) -> Result<Option<&'a ScopedIp>, Error> {
    check_scope(destination.host(), Role::Destination)?;
    let family = destination.family();
    let source = match sources.for_family(family) {
        Some(source) => source,
        None => {
            let other = family.other();
            if policy == FamilyPolicy::Strict && sources.for_family(other).is_some() {
                return Err(Error::NoSourceForFamily {
                    destination: destination.clone(),
                    family,
                    configured: other,
                });
            }
            return Ok(None);
        }
    };
    check_scope(source, Role::Source)?;
    if let (Some(ours), Some(theirs)) = (source.scope(), destination.host().scope()) {
        let comparable = matches!(
            (ours, theirs),
            (Scope::Name(_), Scope::Name(_)) | (Scope::Index(_), Scope::Index(_))
        );
        if source.is_link_local()
            && destination.host().is_link_local()
            && comparable
            && ours != theirs
        {
            return Err(Error::ScopeMismatch {
                source_addr: source.clone(),
                destination: destination.clone(),
            });
        }
    }
    Ok(Some(source))
}

/// Fails when a link-local address has no scope.
#[doc(hidden)]
pub fn check_scope(address: &ScopedIp, role: Role) -> Result<(), Error> {
    if address.is_link_local() && address.scope().is_none() {
        return Err(Error::MissingScope {
            role,
            address: address.clone(),
        });
    }
    Ok(())
}

/// Resolves a scope to an interface index (`if_nametoindex(3)` for
/// names); an interface this host lacks is [`Error::UnknownInterface`].
pub(crate) fn resolve_scope(address: &ScopedIp, role: Role) -> Result<u32, Error> {
    match address.scope() {
        None => Ok(0),
        Some(Scope::Index(index)) => Ok(*index),
        Some(Scope::Name(name)) => {
            crate::sock::interface_index(name).map_err(|error| Error::UnknownInterface {
                role,
                address: address.clone(),
                name: name.clone(),
                error: std::sync::Arc::new(error),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Family;

    fn ip(text: &str) -> ScopedIp {
        text.parse().unwrap()
    }

    fn ep(text: &str) -> Endpoint {
        text.parse().unwrap()
    }

    #[test]
    fn destination_family_selects_source() {
        let sources = Sources::new()
            .with(ip("192.0.2.10"))
            .with(ip("2001:db8::10"));
        let pick = |d: &str| {
            select_source(&sources, FamilyPolicy::Strict, &ep(d))
                .unwrap()
                .cloned()
        };
        assert_eq!(pick("192.0.2.1:1"), Some(ip("192.0.2.10")));
        assert_eq!(pick("[2001:db8::1]:1"), Some(ip("2001:db8::10")));
        // An IPv4-mapped destination is an IPv6 socket: it takes the v6 source.
        assert_eq!(pick("[::ffff:192.0.2.1]:1"), Some(ip("2001:db8::10")));
    }

    #[test]
    fn strict_policy_refuses_the_other_family() {
        let sources = Sources::new().with(ip("192.0.2.10"));
        let err =
            select_source(&sources, FamilyPolicy::Strict, &ep("[2001:db8::1]:1")).unwrap_err();
        assert!(matches!(
            err,
            crate::Error::NoSourceForFamily {
                family: Family::V6,
                configured: Family::V4,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(
            msg.contains("IPv6") && msg.contains("IPv4") && msg.contains("[2001:db8::1]:1"),
            "{msg}"
        );
        let chosen = select_source(
            &sources,
            FamilyPolicy::KernelChooses,
            &ep("[2001:db8::1]:1"),
        )
        .unwrap();
        assert_eq!(chosen, None);
        assert_eq!(
            select_source(
                &Sources::new(),
                FamilyPolicy::Strict,
                &ep("[2001:db8::1]:1")
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn link_local_rules() {
        let scoped = Sources::new().with(ip("fe80::a%eth0"));
        let unscoped = Sources::new().with(ip("fe80::a"));
        let check = |s: &Sources, d: &str| {
            select_source(s, FamilyPolicy::Strict, &ep(d)).map(|s| s.cloned())
        };

        assert_eq!(
            check(&scoped, "[fe80::b%eth0]:1").unwrap(),
            Some(ip("fe80::a%eth0"))
        );
        assert!(matches!(
            check(&scoped, "[fe80::b]:1"),
            Err(crate::Error::MissingScope {
                role: Role::Destination,
                ..
            })
        ));
        assert!(matches!(
            check(&unscoped, "[fe80::b%eth0]:1"),
            Err(crate::Error::MissingScope {
                role: Role::Source,
                ..
            })
        ));
        assert!(matches!(
            check(&scoped, "[fe80::b%eth1]:1"),
            Err(crate::Error::ScopeMismatch { .. })
        ));
        let by_index = Sources::new().with(ip("fe80::a%2"));
        assert!(matches!(
            check(&by_index, "[fe80::b%3]:1"),
            Err(crate::Error::ScopeMismatch { .. })
        ));
        // A name against an index is left for after resolution.
        assert!(check(&by_index, "[fe80::b%eth0]:1").is_ok());
        // A global source may reach a scoped link-local destination.
        assert!(check(&Sources::new().with(ip("2001:db8::10")), "[fe80::b%eth0]:1").is_ok());
        // With no source configured, a link-local destination still needs a scope.
        assert!(matches!(
            check(&Sources::new(), "[fe80::b]:1"),
            Err(crate::Error::MissingScope {
                role: Role::Destination,
                ..
            })
        ));
    }
}
