//! Coordination of the daemons that share a journal, apart from storage: which work this
//! daemon may run, and notice of what it no longer may. Today the unit of work is everything
//! (one daemon leads a shared journal and runs every job; the others are standbys); the seam is
//! shaped so that a daemon can later be granted a part. A local journal has one daemon: [`Solo`].

use crate::job::{Job, JobResult};
use crate::BoxFuture;

use super::JournalError;

/// What a daemon has been granted to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Every job in flight: the only daemon on its journal, or the leader of a shared one.
    Everything,
}

pub trait Coordination: Send + Sync + 'static {
    /// Resolves once this daemon may run work, with what it may run: at once for a local
    /// journal; for a shared one after winning the work, and reading everything its previous
    /// holder wrote. Until then the daemon serves as a standby.
    fn acquire(&self) -> BoxFuture<Result<Grant, JournalError>>;

    /// Resolves, with the reason, once this daemon may no longer run what it was granted
    /// (another daemon took it over): it must stop, and can record nothing more of it.
    fn revoked(&self) -> BoxFuture<String>;

    /// Gives the work back (at shutdown, after the last write), so that another daemon takes
    /// it up at once rather than when a lease runs out.
    fn release(&self) -> BoxFuture<()>;

    /// Whether this daemon runs work, or which daemon does.
    fn role(&self) -> BoxFuture<Role>;

    /// Changes other daemons make to a shared journal, as they are seen: jobs a standby
    /// accepted (for the daemon that runs work) and answers recorded elsewhere (for the
    /// clients waiting here). Taken once; `None` for a local journal.
    fn remote_changes(&self) -> Option<RemoteChanges>;
}

/// The only daemon on a local journal: granted everything at once, never revoked.
pub struct Solo;

impl Coordination for Solo {
    fn acquire(&self) -> BoxFuture<Result<Grant, JournalError>> {
        Box::pin(std::future::ready(Ok(Grant::Everything)))
    }

    fn revoked(&self) -> BoxFuture<String> {
        Box::pin(std::future::pending())
    }

    fn release(&self) -> BoxFuture<()> {
        Box::pin(std::future::ready(()))
    }

    fn role(&self) -> BoxFuture<Role> {
        Box::pin(std::future::ready(Role::Leader))
    }

    fn remote_changes(&self) -> Option<RemoteChanges> {
        None
    }
}

/// A daemon's part in a shared journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Another daemon leads (named if it could be asked); this one accepts jobs into the
    /// journal and answers from it, and takes over if the leader goes.
    Standby {
        leader: Option<String>,
    },
}

/// A change to a shared journal made by another daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteChange {
    Accepted(Job),
    Completed(JobResult),
}

pub type RemoteChanges = tokio::sync::mpsc::UnboundedReceiver<RemoteChange>;
