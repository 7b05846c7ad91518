//! Who may use the socket: it is created owner-only (or shared with a configured group), and
//! every peer is checked with SO_PEERCRED, so even a socket whose mode was loosened by hand
//! refuses other users. The tests that run a client as another user need root.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{describe, write_config, Daemon, BIN};

const NOBODY: u32 = 65_534;
/// Not in any group we configure.
const STRANGER: u32 = 65_533;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `primed status` run as `uid`/`gid` (which drops root's supplementary groups too).
fn status_as(socket: &Path, uid: u32, gid: u32) -> Output {
    Command::new(BIN)
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run a client as another user")
}

/// `primed status` run as `uid` with primary group `gid` and supplementary `groups`.
fn status_with_groups(socket: &Path, uid: u32, gid: u32, groups: &'static [u32]) -> Output {
    let mut command = Command::new(BIN);
    command.arg("status").arg("--socket").arg(socket);
    // SAFETY: only async-signal-safe calls between fork and exec; the group list must be set
    // while still root, so this replaces Command::uid/gid (which would drop the groups first).
    unsafe {
        command.pre_exec(move || {
            let ok = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                && libc::setgid(gid) == 0
                && libc::setuid(uid) == 0;
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command.output().expect("run a client as another user")
}

fn open_up(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn the_socket_is_created_owner_only() {
    let daemon = Daemon::start(1);
    let metadata = fs::metadata(&daemon.socket).expect("socket");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
}

#[test]
fn another_user_is_refused_even_through_a_loosened_socket() {
    if !is_root() {
        eprintln!("skipped: running a client as another user needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    open_up(tmp.path(), 0o755);
    let daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    open_up(&daemon.socket, 0o666);

    let out = status_as(&daemon.socket, NOBODY, NOBODY);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied: uid 65534"), "{stderr}");
    let refused = daemon.wait_for("peer refused", |l| l["event"] == "peer_refused");
    assert_eq!(refused["uid"], NOBODY);
    assert!(
        daemon.cli(&["status"]).status.success(),
        "the owner is served"
    );
}

#[test]
fn a_socket_group_admits_its_members_and_only_them() {
    if !is_root() {
        eprintln!("skipped: running a client as another user needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    open_up(tmp.path(), 0o755);
    let config = write_config(tmp.path(), "[daemon]\nsocket_group = \"nogroup\"\n");
    let args = ["--config", config.to_str().expect("utf-8 path")];
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&args)
        .start();
    let metadata = fs::metadata(&daemon.socket).expect("socket");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o660);
    assert_eq!(metadata.gid(), NOBODY, "the socket belongs to nogroup");

    let member = status_as(&daemon.socket, STRANGER, NOBODY);
    assert!(member.status.success(), "{}", describe(&member));
    let supplementary = status_with_groups(&daemon.socket, STRANGER, STRANGER, &[NOBODY]);
    assert!(
        supplementary.status.success(),
        "a member through a supplementary group: {}",
        describe(&supplementary)
    );

    open_up(&daemon.socket, 0o666);
    let out = status_as(&daemon.socket, STRANGER, STRANGER);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("socket group nogroup"), "{stderr}");
}
