//! Credential bodies: AUTH_SYS (RFC 5531 appendix A) and GlusterFS's
//! AUTH_GLUSTERFS_v2 and v3. Other flavors pass through untouched.

use bytes::{Bytes, BytesMut};

use super::error::DecodeError;
use super::msg::{OpaqueAuth, flavor};
use super::xdr::{XdrReader, XdrWriter};

/// The bound on AUTH_SYS's `machinename` (RFC 5531 appendix A).
pub const MAX_MACHINE_NAME: u32 = 255;

/// The bound on AUTH_SYS's supplementary groups (RFC 5531 appendix A).
pub const MAX_GROUPS: u32 = 16;

/// An AUTH_SYS credential body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSys {
    /// An arbitrary id the caller made up.
    pub stamp: u32,
    /// The caller's host name, at most 255 bytes.
    pub machine_name: String,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups, at most 16.
    pub gids: Vec<u32>,
}

/// An AUTH_GLUSTERFS_v2 credential body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthGlusterfsV2 {
    /// The caller's process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The lock owner.
    pub lk_owner: Bytes,
}

/// An AUTH_GLUSTERFS_v3 credential body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthGlusterfsV3 {
    /// The caller's process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Flags (bit 0: an internal client).
    pub flags: u32,
    /// The call's birth time: nanoseconds.
    pub ctime_nsec: u32,
    /// The call's birth time: seconds.
    pub ctime_sec: u64,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The lock owner.
    pub lk_owner: Bytes,
}

/// A credential, parsed by its flavor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// AUTH_NONE (any body is ignored, as RFC 5531 allows).
    None,
    /// AUTH_SYS.
    Sys(AuthSys),
    /// AUTH_GLUSTERFS_v2.
    GlusterfsV2(AuthGlusterfsV2),
    /// AUTH_GLUSTERFS_v3.
    GlusterfsV3(AuthGlusterfsV3),
    /// Any other flavor, untouched.
    Other(OpaqueAuth),
}

impl Credential {
    /// Parses an `opaque_auth` by its flavor. The body is already bounded
    /// at 400 bytes; every list inside it is bounded by that too.
    pub fn parse(auth: &OpaqueAuth) -> Result<Credential, DecodeError> {
        let mut r = XdrReader::new(&auth.body);
        Ok(match auth.flavor {
            flavor::AUTH_NONE => Credential::None,
            flavor::AUTH_SYS => Credential::Sys(AuthSys {
                stamp: r.u32()?,
                machine_name: r.string(MAX_MACHINE_NAME)?.to_owned(),
                uid: r.u32()?,
                gid: r.u32()?,
                gids: r.array(MAX_GROUPS, XdrReader::u32)?,
            }),
            flavor::AUTH_GLUSTERFS_V2 => Credential::GlusterfsV2(AuthGlusterfsV2 {
                pid: r.i32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                groups: r.array(u32::MAX, XdrReader::u32)?,
                lk_owner: Bytes::copy_from_slice(r.opaque(u32::MAX)?),
            }),
            flavor::AUTH_GLUSTERFS_V3 => Credential::GlusterfsV3(AuthGlusterfsV3 {
                pid: r.i32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                flags: r.u32()?,
                ctime_nsec: r.u32()?,
                ctime_sec: r.u64()?,
                groups: r.array(u32::MAX, XdrReader::u32)?,
                lk_owner: Bytes::copy_from_slice(r.opaque(u32::MAX)?),
            }),
            _ => Credential::Other(auth.clone()),
        })
    }

    /// Builds the `opaque_auth` for this credential. Fails when the body
    /// would exceed 400 bytes, or an AUTH_SYS machine name or group list its
    /// bound: the peer would refuse it.
    pub fn to_opaque_auth(&self) -> Result<OpaqueAuth, CredentialTooLarge> {
        let mut body = BytesMut::new();
        let mut w = XdrWriter::new(&mut body);
        let flavor = match self {
            Credential::None => flavor::AUTH_NONE,
            Credential::Sys(sys) => {
                if sys.machine_name.len() > MAX_MACHINE_NAME as usize {
                    return Err(CredentialTooLarge("AUTH_SYS machine name over 255 bytes"));
                }
                if sys.gids.len() > MAX_GROUPS as usize {
                    return Err(CredentialTooLarge("AUTH_SYS allows at most 16 groups"));
                }
                w.u32(sys.stamp);
                w.string(&sys.machine_name);
                w.u32(sys.uid);
                w.u32(sys.gid);
                w.array(&sys.gids, |w, g| w.u32(*g));
                flavor::AUTH_SYS
            }
            Credential::GlusterfsV2(v2) => {
                w.i32(v2.pid);
                w.u32(v2.uid);
                w.u32(v2.gid);
                w.array(&v2.groups, |w, g| w.u32(*g));
                w.opaque(&v2.lk_owner);
                flavor::AUTH_GLUSTERFS_V2
            }
            Credential::GlusterfsV3(v3) => {
                w.i32(v3.pid);
                w.u32(v3.uid);
                w.u32(v3.gid);
                w.u32(v3.flags);
                w.u32(v3.ctime_nsec);
                w.u64(v3.ctime_sec);
                w.array(&v3.groups, |w, g| w.u32(*g));
                w.opaque(&v3.lk_owner);
                flavor::AUTH_GLUSTERFS_V3
            }
            Credential::Other(auth) => auth.flavor,
        };
        let body = match self {
            Credential::Other(auth) => auth.body.clone(),
            _ => body.freeze(),
        };
        if body.len() > super::msg::MAX_AUTH_BYTES as usize {
            return Err(CredentialTooLarge("credential body over 400 bytes"));
        }
        Ok(OpaqueAuth { flavor, body })
    }
}

/// A credential too large for the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialTooLarge(&'static str);

impl std::fmt::Display for CredentialTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for CredentialTooLarge {}
