//! Who may talk to the daemon. The socket's mode keeps other users out of the file; this is
//! the second lock on the door: every peer's credentials (SO_PEERCRED) are checked on connect,
//! so a socket whose mode was loosened by hand still serves only the daemon's own user, root,
//! and members of the configured socket group.

use std::ffi::CString;
use std::io;

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

    pub fn gid(&self) -> Option<u32> {
        self.group.as_ref().map(|(_, gid)| *gid)
    }

    /// Ok if `peer` may use the daemon; otherwise the message to send it.
    pub fn check(&self, peer: &UCred) -> Result<(), String> {
        self.check_ids(peer.uid(), peer.gid(), peer.pid())
    }

    fn check_ids(&self, uid: u32, primary_gid: u32, pid: Option<i32>) -> Result<(), String> {
        if uid == self.uid || uid == 0 {
            return Ok(());
        }
        if let Some((name, gid)) = &self.group {
            let member = primary_gid == *gid
                || pid
                    .and_then(|pid| supplementary_groups(pid).ok())
                    .is_some_and(|groups| groups.contains(gid));
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

/// A process's supplementary groups, from /proc (SO_PEERCRED gives only the primary one).
fn supplementary_groups(pid: i32) -> io::Result<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default())
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
        assert!(owner_only.check_ids(1000, 1000, None).is_ok());
        assert!(owner_only.check_ids(0, 0, None).is_ok());
        let refused = owner_only.check_ids(1001, 1000, None).unwrap_err();
        assert!(refused.contains("uid 1001"), "{refused}");
        let shared = PeerPolicy {
            uid: 1000,
            group: Some(("primed".into(), 500)),
        };
        assert!(shared.check_ids(1001, 500, None).is_ok());
        let refused = shared.check_ids(1001, 1001, None).unwrap_err();
        assert!(refused.contains("socket group primed"), "{refused}");
    }
}
