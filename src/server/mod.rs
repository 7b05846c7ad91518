//! The Unix-socket server: owning the socket path (lock, stale-socket removal, bind, mode),
//! accepting connections until shutdown, and the state that connection handlers share.

mod admin;
mod admission;
mod connection;
mod peer;

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tracing::{info, warn};

use crate::pool::PoolContext;

pub use admission::free_bytes;
pub use peer::PeerPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create socket directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("another primed is already serving on {socket} (it holds {lock})")]
    InUse { socket: PathBuf, lock: PathBuf },
    #[error("cannot remove stale socket {path}: {source}")]
    Stale { path: PathBuf, source: io::Error },
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set the owner, group or mode of {path}: {source}")]
    Permissions { path: PathBuf, source: io::Error },
}

/// Limits that protect the daemon from its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Jobs in flight across all clients before submissions are refused as busy.
    pub max_in_flight: u64,
    /// Free space the journal's filesystem must keep before submissions are refused.
    pub min_free_bytes: u64,
    pub max_digits: usize,
    pub max_frame_bytes: usize,
    /// Jobs one connection may have unanswered before the daemon stops reading from it.
    pub max_outstanding: usize,
}

/// What every connection handler needs.
pub struct Shared {
    pub ctx: PoolContext,
    pub reloader: Arc<crate::reload::Reloader>,
    pub limits: Limits,
    pub peers: PeerPolicy,
    /// Where the journal lives: its filesystem's free space is checked before accepting.
    pub data_dir: PathBuf,
    /// Becomes true at shutdown: connections stop reading and close once their answers are out.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Dropped with the last connection: shutdown waits for its receiver to see that.
    pub alive: tokio::sync::mpsc::Sender<()>,
}

/// A bound socket. Holds the lock file for as long as it lives and removes the socket on drop.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    _lock: File,
}

/// Takes `<socket>.lock` first, so that the stale socket we remove is never a live daemon's;
/// then binds, and sets group and mode explicitly rather than trusting the umask.
pub fn bind(path: &Path, peers: &PeerPolicy) -> Result<Listener, ServerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| ServerError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let lock_path = lock_path(path);
    let lock = take_lock(path, &lock_path)?;
    match fs::remove_file(path) {
        Ok(()) => warn!(socket = %path.display(), "removed stale socket left by a previous daemon"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServerError::Stale {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    let bind_error = |source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    let permissions_error = |source| ServerError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    if let Some(gid) = peers.gid() {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(permissions_error)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(peers.mode()))
        .map_err(permissions_error)?;
    Ok(Listener {
        listener,
        path: path.to_path_buf(),
        _lock: lock,
    })
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn take_lock(socket: &Path, lock_path: &Path) -> Result<File, ServerError> {
    let lock_error = |source| ServerError::Lock {
        path: lock_path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(ServerError::InUse {
            socket: socket.to_path_buf(),
            lock: lock_path.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(lock_error(e)),
    }
}

impl Listener {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until `shutdown` completes; each runs in its own task.
    pub async fn serve(&self, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        info!(socket = %self.path.display(), event = "listening", "accepting connections");
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(connection::handle(stream, Arc::clone(&shared)));
                    }
                    Err(e) => warn!(reason = %e, "accept failed"),
                },
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binding_replaces_a_stale_socket_but_not_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/primed.sock");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a dead listener leaves its socket file");
        let peers = PeerPolicy::new(None).unwrap();
        let live = bind(&path, &peers).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            bind(&path, &peers),
            Err(ServerError::InUse { .. })
        ));
        assert!(path.exists(), "the live socket was not removed");
        drop(live);
        assert!(!path.exists());
    }
}
