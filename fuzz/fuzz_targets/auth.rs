//! Credential bodies by flavor.
//!
//! Input: 4 bytes (big-endian u32) select the flavor by their value mod 5:
//! 0 AUTH_NONE, 1 AUTH_SYS, 2 AUTH_GLUSTERFS_v2 (390039), 3 AUTH_GLUSTERFS_v3
//! (390040), 4 the value itself as the flavor (any other flavor, or a known
//! one reached by its own number). The rest, cut to the 400 bytes the wire
//! allows, is the body.
//!
//! When `Credential::parse` accepts it, the credential must build an
//! `opaque_auth` again that parses to an equal credential (values are
//! compared; the bytes only up to what parsing ignores), see
//! `peerwire_fuzz::check_credential`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerwire::proto::{Credential, MAX_AUTH_BYTES, OpaqueAuth, flavor};
use peerwire_fuzz::check_credential;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let selector = u32::from_be_bytes(*selector);
    let flavor = match selector % 5 {
        0 => flavor::AUTH_NONE,
        1 => flavor::AUTH_SYS,
        2 => flavor::AUTH_GLUSTERFS_V2,
        3 => flavor::AUTH_GLUSTERFS_V3,
        _ => selector,
    };
    let body = &body[..body.len().min(MAX_AUTH_BYTES as usize)];
    let auth = OpaqueAuth {
        flavor,
        body: Bytes::copy_from_slice(body),
    };
    let parsed = check_credential(&auth);
    match (flavor, &parsed) {
        // AUTH_NONE ignores its body: it always parses.
        (flavor::AUTH_NONE, Some(Credential::None)) => {}
        (flavor::AUTH_NONE, _) => panic!("AUTH_NONE gave {parsed:?}"),
        (_, None) => {}
        (flavor::AUTH_SYS, Some(Credential::Sys(_)))
        | (flavor::AUTH_GLUSTERFS_V2, Some(Credential::GlusterfsV2(_)))
        | (flavor::AUTH_GLUSTERFS_V3, Some(Credential::GlusterfsV3(_))) => {}
        (flavor::AUTH_SYS | flavor::AUTH_GLUSTERFS_V2 | flavor::AUTH_GLUSTERFS_V3, _) => {
            panic!("flavor {flavor} gave {parsed:?}")
        }
        // Any other flavor passes through untouched.
        (_, Some(Credential::Other(other))) => assert_eq!(other, &auth),
        (_, Some(_)) => panic!("flavor {flavor} gave {parsed:?}"),
    }
});
