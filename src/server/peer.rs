//! Who may talk to the daemon. The socket's mode keeps other users out of the file; this is
//! the second lock on the door: every peer's credentials (SO_PEERCRED) are checked on connect,
//! so a socket whose mode was loosened by hand still serves only the daemon's own user, root,
//! and members of the configured socket group.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use anyhow::{bail, Context};
use tokio::net::unix::UCred;

/// What the socket file is set to, and which peers are served.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    uid: u32,
    group: Option<(String, u32)>,
}

impl PeerPolicy {
    /// Resolves the socket group by name, if one is configured.
    pub fn new(group: Option<&str>) -> anyhow::Result<PeerPolicy> {
        let group = match group {
            Some(name) => Some((name.to_string(), gid_of(name)?)),
            None => None,
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        Ok(PeerPolicy { uid, group })
    }

    /// The socket's mode: owner-only, or owner and group when a group is configured.
    pub fn mode(&self) -> u32 {
        if self.group.is_some() {
            0o660
        } else {
            0o600
        }
    }

    /// The daemon's own (effective) uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The daemon's own user and root: they may use the connections held in reserve.
    pub fn privileged(&self, uid: u32) -> bool {
        uid == self.uid || uid == 0
    }

    pub fn gid(&self) -> Option<u32> {
        self.group.as_ref().map(|(_, gid)| *gid)
    }

    /// Ok if the peer on `socket` may use the daemon; otherwise the message to send it.
    pub fn check(&self, socket: &impl AsRawFd, peer: &UCred) -> Result<(), String> {
        self.check_ids(peer.uid(), peer.gid(), || peer_groups(socket.as_raw_fd()))
    }

    fn check_ids(
        &self,
        uid: u32,
        primary_gid: u32,
        groups: impl FnOnce() -> io::Result<Vec<u32>>,
    ) -> Result<(), String> {
        if uid == self.uid || uid == 0 {
            return Ok(());
        }
        if let Some((name, gid)) = &self.group {
            let member = primary_gid == *gid || groups().is_ok_and(|groups| groups.contains(gid));
            if member {
                return Ok(());
            }
            return Err(format!(
                "permission denied: uid {uid} is neither the daemon's user (uid {}) nor in its \
                 socket group {name}",
                self.uid
            ));
        }
        Err(format!(
            "permission denied: uid {uid} is not the daemon's user (uid {}); set \
             daemon.socket_group to share the daemon with a group",
            self.uid
        ))
    }
}

fn gid_of(name: &str) -> anyhow::Result<u32> {
    let c_name = CString::new(name).context("daemon.socket_group contains a NUL byte")?;
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the duration of the call and the buffer's length is
    // passed with it; the result is read only when `found` is non-null.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc))
            .with_context(|| format!("cannot look up daemon.socket_group {name:?}"));
    }
    if found.is_null() {
        bail!("daemon.socket_group {name:?} is not a group on this system");
    }
    Ok(group.gr_gid)
}

/// Linux's SO_PEERGROUPS (4.13+; not exported by the libc crate for every target).
const SO_PEERGROUPS: libc::c_int = 59;

/// The peer's supplementary groups as of its connect (SO_PEERCRED gives only the primary one;
/// reading /proc by pid would race with pid reuse).
fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer is valid for `len` bytes, and the kernel writes back the length.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ERANGE) || count <= groups.len() {
            return Err(error);
        }
        groups.resize(count, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_group_is_named() {
        let err = PeerPolicy::new(Some("no-such-group-primed")).unwrap_err();
        assert!(
            format!("{err:#}").contains("no-such-group-primed"),
            "{err:#}"
        );
    }

    #[test]
    fn the_mode_follows_the_group() {
        assert_eq!(PeerPolicy::new(None).unwrap().mode(), 0o600);
        let root = PeerPolicy::new(Some("root")).unwrap();
        assert_eq!((root.mode(), root.gid()), (0o660, Some(0)));
    }

    #[test]
    fn the_owner_root_and_group_members_are_served_and_others_refused() {
        let owner_only = PeerPolicy {
            uid: 1000,
            group: None,
        };
        let none = || Ok(Vec::new());
        assert!(owner_only.check_ids(1000, 1000, none).is_ok());
        assert!(owner_only.check_ids(0, 0, none).is_ok());
        let refused = owner_only.check_ids(1001, 1000, none).unwrap_err();
        assert!(refused.contains("uid 1001"), "{refused}");
        let shared = PeerPolicy {
            uid: 1000,
            group: Some(("primed".into(), 500)),
        };
        assert!(shared.check_ids(1001, 500, none).is_ok());
        assert!(shared.check_ids(1001, 1001, || Ok(vec![7, 500])).is_ok());
        let refused = shared.check_ids(1001, 1001, none).unwrap_err();
        assert!(refused.contains("socket group primed"), "{refused}");
        let unreadable = || Err(io::Error::other("no"));
        assert!(shared.check_ids(1001, 1001, unreadable).is_err());
    }
}
