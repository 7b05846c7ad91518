//! Owning the socket's path safely, before anything listens on it: a directory nobody else can
//! write to (made 0700 when we make it), a lock taken first and never through a symlink, and
//! the removal of a stale *socket* of our own only: anything else at the path is an error that
//! names it. Another user who could write the directory could put a fake daemon, or a symlink
//! to a file of ours, where our clients or we would follow it.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::ServerError;

/// The facts about a path that decide whether we may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    /// Permission bits, sticky bit included.
    pub mode: u32,
}

impl Owner {
    fn of(metadata: &fs::Metadata) -> Owner {
        Owner {
            uid: metadata.uid(),
            mode: metadata.mode() & 0o7777,
        }
    }
}

/// Why a directory may not hold our socket, if it may not: it must be ours (or root's, as
/// `/run` is) and writable by nobody else, sticky bit or not.
pub fn judge_dir(dir: Owner, us: u32) -> Result<(), String> {
    if dir.uid != us && dir.uid != 0 {
        return Err(format!(
            "it belongs to uid {}, not to this daemon's user (uid {us}) or root",
            dir.uid
        ));
    }
    if dir.mode & 0o022 != 0 {
        return Err(format!(
            "its mode {:04o} lets other users write to it (they could put a fake daemon there)",
            dir.mode
        ));
    }
    Ok(())
}

/// Makes the socket's directory if it is missing (0700; 0710 and the socket's group when one is
/// configured, so its members can reach the socket), then refuses it if it is not safe.
pub fn prepare_dir(dir: &Path, us: u32, group: Option<u32>) -> Result<(), ServerError> {
    let error = |reason: String| ServerError::Dir {
        path: dir.to_path_buf(),
        reason,
    };
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_dir(dir, group).map_err(|e| error(format!("cannot create it: {e}")))?
        }
        Err(e) => return Err(error(e.to_string())),
    }
    let metadata = fs::symlink_metadata(dir).map_err(|e| error(e.to_string()))?;
    if !metadata.is_dir() {
        return Err(error(
            "it is not a directory (a symlink is not followed)".into(),
        ));
    }
    judge_dir(Owner::of(&metadata), us).map_err(error)
}

fn create_dir(dir: &Path, group: Option<u32>) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mode = if group.is_some() { 0o710 } else { 0o700 };
    DirBuilder::new().mode(mode).create(dir)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(dir, None, Some(gid))?;
    }
    // The umask may have taken bits we asked for: set them exactly.
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

/// Opens and locks `<socket>.lock`, never through a symlink, and only a regular file of ours.
pub fn take_lock(socket: &Path, lock_path: &Path, us: u32) -> Result<File, ServerError> {
    let lock_error = |reason: String| ServerError::Lock {
        path: lock_path.to_path_buf(),
        reason,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(lock_path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => lock_error("it is a symlink, which primed never follows".into()),
            _ => lock_error(e.to_string()),
        })?;
    let metadata = file.metadata().map_err(|e| lock_error(e.to_string()))?;
    if !metadata.is_file() || (metadata.uid() != us && us != 0) {
        return Err(lock_error(format!(
            "it is not a regular file of uid {us}; remove it if no primed is running"
        )));
    }
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(ServerError::InUse {
            socket: socket.to_path_buf(),
            lock: lock_path.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(lock_error(e.to_string())),
    }
}

/// What stands at the socket's path (looked at without following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Nothing,
    Socket { uid: u32 },
    Other(&'static str),
}

/// With the lock held, a socket of ours at the path is a dead daemon's: remove it. Anything
/// else is somebody's file, and is left alone.
pub fn clear_stale(path: &Path, us: u32) -> Result<(), ServerError> {
    let found = match fs::symlink_metadata(path) {
        Ok(metadata) => found(&metadata),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Found::Nothing,
        Err(e) => return Err(stale_error(path, e.to_string())),
    };
    match found {
        Found::Nothing => Ok(()),
        Found::Socket { uid } if uid == us || us == 0 => {
            fs::remove_file(path).map_err(|e| stale_error(path, e.to_string()))?;
            warn!(socket = %path.display(), "removed stale socket left by a previous daemon");
            Ok(())
        }
        Found::Socket { uid } => Err(stale_error(
            path,
            format!("a socket of uid {uid} is there, not one of this daemon's user (uid {us})"),
        )),
        Found::Other(kind) => Err(stale_error(
            path,
            format!(
                "{kind} is there; primed replaces only a stale socket of its own: move it away \
                 or choose another --socket"
            ),
        )),
    }
}

fn found(metadata: &fs::Metadata) -> Found {
    let kind = metadata.file_type();
    if kind.is_socket() {
        Found::Socket {
            uid: metadata.uid(),
        }
    } else if kind.is_symlink() {
        Found::Other("a symlink")
    } else if kind.is_dir() {
        Found::Other("a directory")
    } else if kind.is_file() {
        Found::Other("a regular file")
    } else {
        Found::Other("a special file")
    }
}

fn stale_error(path: &Path, reason: String) -> ServerError {
    ServerError::Stale {
        path: PathBuf::from(path),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_of_ours_or_roots_that_nobody_else_writes_is_used() {
        let us = 1000;
        assert!(judge_dir(
            Owner {
                uid: us,
                mode: 0o700
            },
            us
        )
        .is_ok());
        assert!(judge_dir(
            Owner {
                uid: 0,
                mode: 0o755
            },
            us
        )
        .is_ok());
        assert!(judge_dir(
            Owner {
                uid: us,
                mode: 0o750
            },
            us
        )
        .is_ok());
        let squatted = judge_dir(
            Owner {
                uid: 1001,
                mode: 0o700,
            },
            us,
        )
        .unwrap_err();
        assert!(squatted.contains("uid 1001"), "{squatted}");
        let open = judge_dir(
            Owner {
                uid: us,
                mode: 0o777,
            },
            us,
        )
        .unwrap_err();
        assert!(open.contains("0777"), "{open}");
        assert!(
            judge_dir(
                Owner {
                    uid: 0,
                    mode: 0o1777
                },
                us
            )
            .is_err(),
            "/tmp itself"
        );
        assert!(judge_dir(
            Owner {
                uid: us,
                mode: 0o770
            },
            us
        )
        .is_err());
    }

    fn uid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn a_missing_directory_is_made_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/primed");
        prepare_dir(&dir, uid(), None).unwrap();
        let mode = fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::os::unix::fs::symlink(&dir, tmp.path().join("link")).unwrap();
        let err = prepare_dir(&tmp.path().join("link"), uid(), None).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn the_lock_is_never_taken_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("victim");
        let lock = tmp.path().join("primed.sock.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let err = take_lock(&tmp.path().join("primed.sock"), &lock, uid()).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!target.exists(), "the symlink's target was not created");
    }

    #[test]
    fn only_a_stale_socket_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("primed.sock");
        fs::write(&path, "precious").unwrap();
        let err = clear_stale(&path, uid()).unwrap_err();
        assert!(err.to_string().contains("a regular file"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let err = clear_stale(&path, uid()).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        fs::remove_dir(&path).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        clear_stale(&path, uid()).unwrap();
        assert!(!path.exists());
        clear_stale(&path, uid()).unwrap();
    }
}
