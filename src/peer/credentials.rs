//! The identity of a peer on a Unix socket: the admission lists that judge
//! its credentials ([`PeerCredentials`], which the transport reports).
//!
//! On a Unix socket there is no address to observe. What the kernel tells
//! the server instead is who the connecting process was when it called
//! `connect(2)` (`SO_PEERCRED`): its effective user and group IDs and its
//! process ID. Unlike a source address, these cannot be forged by the peer.
//!
//! Two gates apply, in order:
//! 1. the socket file's mode ([`ListenOptions::unix_mode`](crate::ListenOptions::unix_mode),
//!    default `0o600`): the kernel refuses `connect(2)` to a process
//!    without write permission on the file;
//! 2. [`UnixAdmission`], before a byte is read: reject lists, then allow
//!    lists, by user and by group.

use crate::sock::PeerCredentials;

/// Admission by credentials, for connections on Unix sockets: applied
/// before a byte is read, like the address [`Admission`](crate::Admission)
/// for TCP (which does not apply to Unix sockets, and this one not to
/// TCP).
///
/// A connection is refused when its user ID is in `reject_uids` or its
/// group ID in `reject_gids`. Otherwise, when both allow lists are empty
/// it is admitted; when either has entries it is admitted only if its user
/// ID is in `allow_uids` or its group ID in `allow_gids`.
///
/// The default admits everyone whom the socket file's mode lets connect;
/// with the default mode `0o600`, that is the file's owner and root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnixAdmission {
    /// User IDs refused outright.
    pub reject_uids: Vec<u32>,
    /// Group IDs refused outright.
    pub reject_gids: Vec<u32>,
    /// User IDs admitted.
    pub allow_uids: Vec<u32>,
    /// Group IDs admitted.
    pub allow_gids: Vec<u32>,
}

impl UnixAdmission {
    /// Admits these users only.
    pub fn users(uids: impl IntoIterator<Item = u32>) -> UnixAdmission {
        UnixAdmission {
            allow_uids: uids.into_iter().collect(),
            ..UnixAdmission::default()
        }
    }

    /// True when a connection from a process with `credentials` may be
    /// read.
    pub fn admits(&self, credentials: &PeerCredentials) -> bool {
        if self.reject_uids.contains(&credentials.uid)
            || self.reject_gids.contains(&credentials.gid)
        {
            return false;
        }
        (self.allow_uids.is_empty() && self.allow_gids.is_empty())
            || self.allow_uids.contains(&credentials.uid)
            || self.allow_gids.contains(&credentials.gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(uid: u32, gid: u32) -> PeerCredentials {
        PeerCredentials {
            uid,
            gid,
            pid: Some(42),
        }
    }

    #[test]
    fn default_admits_everyone() {
        assert!(UnixAdmission::default().admits(&creds(0, 0)));
        assert!(UnixAdmission::default().admits(&creds(1000, 1000)));
    }

    #[test]
    fn reject_lists_come_first() {
        let admission = UnixAdmission {
            reject_gids: vec![100],
            allow_uids: vec![1000],
            ..UnixAdmission::default()
        };
        assert!(admission.admits(&creds(1000, 1000)));
        assert!(!admission.admits(&creds(1000, 100)), "rejected group");
        assert!(!admission.admits(&creds(0, 0)), "not allowed");
    }

    #[test]
    fn either_allow_list_admits() {
        let admission = UnixAdmission {
            allow_uids: vec![1000],
            allow_gids: vec![50],
            ..UnixAdmission::default()
        };
        assert!(admission.admits(&creds(1000, 1)));
        assert!(admission.admits(&creds(7, 50)));
        assert!(!admission.admits(&creds(7, 1)));
        assert!(!UnixAdmission::users([1]).admits(&creds(0, 0)));
    }
}
