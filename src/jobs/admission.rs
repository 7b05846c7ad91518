//! Whether a submission may be journaled now. Refusals are temporary by nature (busy, disk
//! full, shutting down, a failing journal): the client is told to retry, and nothing already
//! accepted is affected.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::journal::JournalError;

/// What a submission is checked against before it is journaled.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Jobs in flight across all clients before submissions are refused as busy.
    pub max_in_flight: u64,
    /// Free space the journal's filesystem must keep before submissions are refused.
    pub min_free_bytes: u64,
    /// The most digits a number to test (or a prime to make) may have.
    pub max_digits: usize,
    /// Where the journal lives: its filesystem's free space is checked.
    pub data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "busy: {in_flight} jobs in flight and the limit is {limit} (limits.max_in_flight); \
         retry later"
    )]
    Busy { in_flight: u64, limit: u64 },
    #[error(
        "disk full: {free_mib} MiB free for the journal in {path}, below the {min_mib} MiB \
         reserve (limits.min_free_disk_mb); retry once space is freed"
    )]
    DiskFull {
        path: PathBuf,
        free_mib: u64,
        min_mib: u64,
    },
    #[error("shutting down: retry once the daemon is back")]
    ShuttingDown,
    #[error("cannot check free space in {path}: {reason}")]
    Statvfs { path: PathBuf, reason: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl Admission {
    /// Admits a submission, given the jobs in flight and whether the daemon is draining.
    pub fn admit(&self, in_flight: u64, draining: bool) -> Result<(), Refusal> {
        if draining {
            return Err(Refusal::ShuttingDown);
        }
        let limit = self.max_in_flight;
        // Checked before the batch, not with it: a batch bigger than the limit still gets in
        // on an idle daemon (overshooting by at most one batch per connection).
        if in_flight >= limit {
            return Err(Refusal::Busy { in_flight, limit });
        }
        check_free_space(&self.data_dir, self.min_free_bytes)
    }
}

fn check_free_space(path: &Path, min_free: u64) -> Result<(), Refusal> {
    if min_free == 0 {
        return Ok(());
    }
    let free = free_bytes(path).map_err(|e| Refusal::Statvfs {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if free < min_free {
        return Err(Refusal::DiskFull {
            path: path.to_path_buf(),
            free_mib: free >> 20,
            min_mib: min_free >> 20,
        });
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on `path`'s filesystem.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `stats` is a valid, writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_draining_are_refused_before_the_disk_is_looked_at() {
        let admission = Admission {
            max_in_flight: 10,
            min_free_bytes: u64::MAX,
            max_digits: 10,
            data_dir: PathBuf::from("/no/such/dir"),
        };
        assert!(matches!(
            admission.admit(0, true),
            Err(Refusal::ShuttingDown)
        ));
        assert!(matches!(
            admission.admit(10, false),
            Err(Refusal::Busy {
                in_flight: 10,
                limit: 10
            })
        ));
        assert!(matches!(
            admission.admit(9, false),
            Err(Refusal::Statvfs { .. })
        ));
    }

    #[test]
    fn free_space_is_checked_against_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(check_free_space(dir.path(), 1).is_ok());
        let refusal = check_free_space(dir.path(), u64::MAX).unwrap_err();
        assert!(refusal.to_string().starts_with("disk full:"), "{refusal}");
        assert!(matches!(
            check_free_space(Path::new("/no/such/dir"), 1),
            Err(Refusal::Statvfs { .. })
        ));
    }
}
