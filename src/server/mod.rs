//! The Unix-socket server: owning the socket path (lock, stale-socket removal, bind, mode),
//! accepting connections until shutdown, and the state that connection handlers share.

pub(crate) mod admin;
mod connection;
mod limits;
mod path;
mod peer;

use std::fs::{self, File};
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tracing::{info, warn};

use crate::journal::Coordination;
use crate::pool::PoolContext;

pub(crate) use connection::check_peer;
pub(crate) use limits::accept_backoff;
pub use limits::{fit_connections, raise_nofile_limit, Limits, LogBudget, Slot, Slots};
pub use peer::PeerPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("will not use {path} for the socket: {reason}")]
    Dir { path: PathBuf, reason: String },
    #[error("cannot lock {path}: {reason}")]
    Lock { path: PathBuf, reason: String },
    #[error("another primed is already serving on {socket} (it holds {lock})")]
    InUse { socket: PathBuf, lock: PathBuf },
    #[error("cannot listen on {path}: {reason}")]
    Stale { path: PathBuf, reason: String },
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set the owner, group or mode of {path}: {source}")]
    Permissions { path: PathBuf, source: io::Error },
}

/// What every connection handler needs.
pub struct Shared {
    pub ctx: PoolContext,
    /// Whether this daemon runs the tree (requests about its actors are refused on a standby).
    pub coordination: Arc<dyn Coordination>,
    pub reloader: Arc<crate::reload::Reloader>,
    pub limits: Limits,
    pub peers: PeerPolicy,
    /// Connections open, against `limits.max_connections`.
    pub slots: Arc<Slots>,
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
/// then binds, and sets group and mode explicitly rather than trusting the umask. See
/// `path` for what is refused on the way.
pub fn bind(socket: &Path, peers: &PeerPolicy) -> Result<Listener, ServerError> {
    let us = peers.uid();
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        path::prepare_dir(dir, us, peers.gid())?;
    }
    let lock = path::take_lock(socket, &lock_path(socket), us)?;
    path::clear_stale(socket, us)?;
    let bind_error = |source| ServerError::Bind {
        path: socket.to_path_buf(),
        source,
    };
    let listener = UnixListener::bind(socket).map_err(bind_error)?;
    let permissions_error = |source| ServerError::Permissions {
        path: socket.to_path_buf(),
        source,
    };
    if let Some(gid) = peers.gid() {
        std::os::unix::fs::chown(socket, None, Some(gid)).map_err(permissions_error)?;
    }
    fs::set_permissions(socket, fs::Permissions::from_mode(peers.mode()))
        .map_err(permissions_error)?;
    Ok(Listener {
        listener,
        path: socket.to_path_buf(),
        _lock: lock,
    })
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl Listener {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the CLI's connections until `shutdown` completes.
    pub async fn serve(&self, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
        info!(socket = %self.path.display(), max_connections = shared.slots.cap(),
              event = "listening", "accepting connections");
        self.serve_with(shared, shutdown, connection::admit).await
    }

    /// Accepts connections until `shutdown` completes, handing each to `admit` (which serves
    /// it in a task of its own). A failing accept (out of descriptors, say) is retried after a
    /// growing pause, logged once a second.
    pub async fn serve_with(
        &self,
        shared: Arc<Shared>,
        shutdown: impl Future<Output = ()>,
        admit: impl Fn(tokio::net::UnixStream, &Arc<Shared>),
    ) {
        tokio::pin!(shutdown);
        let mut failures = 0;
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    failures = 0;
                    admit(stream, &shared);
                }
                Err(e) => {
                    if let Some(suppressed) = ACCEPT_ERRORS.allow(Instant::now()) {
                        warn!(reason = %e, suppressed, event = "accept_failed",
                              "accept failed; backing off");
                    }
                    let pause = limits::accept_backoff(failures);
                    failures = failures.saturating_add(1);
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}

static ACCEPT_ERRORS: limits::LogBudget = limits::LogBudget::new(Duration::from_secs(1));

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
