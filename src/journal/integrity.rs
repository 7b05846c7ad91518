//! What makes a sled journal trustworthy when it opens: damage that could hide an
//! acknowledged job is refused, never started over, and a full disk is told apart from damage.
//!
//! - **The mark comes first.** A new journal's mark (see [`super::mark`]) is written before
//!   sled creates a single file, so a journal directory that holds anything but has no mark
//!   has lost it: refused. (A crash while creating leaves a mark of id 1 over a journal that
//!   never accepted a job; opening that loses nothing.)
//! - **Fewer ids than the mark** means sled recovered a cut or garbled log: refused.
//! - **Unfinished snapshots** (`snap.*.generating`) are dropped before sled opens: sled writes
//!   one and renames it into place, but reads any file called `snap.*` back, and one left empty
//!   by a full disk made every later start fail as "damaged". The renamed snapshot and the log
//!   are the journal; a `.generating` file is by definition not part of it.
//! - **ENOSPC** at open becomes [`JournalError::DiskFull`], with the journal left as it was.

use std::fs;
use std::io;
use std::path::Path;

use tracing::{info, warn};

use super::{mark, JournalError};

fn damaged(dir: &Path, reason: String) -> JournalError {
    JournalError::Damaged {
        path: dir.to_path_buf(),
        reason,
    }
}

/// Whether an I/O failure is the disk being full (or over quota).
pub fn is_disk_full(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

pub fn disk_full(dir: &Path, error: &io::Error) -> JournalError {
    JournalError::DiskFull {
        path: dir.to_path_buf(),
        reason: error.to_string(),
    }
}

/// Gets `dir` ready for sled: a new journal gets its mark first; an existing one must have
/// one. Returns the id the mark guarantees.
pub fn prepare(dir: &Path) -> Result<u64, JournalError> {
    let open_error = |e: io::Error| match is_disk_full(&e) {
        true => disk_full(dir, &e),
        false => JournalError::Open {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        },
    };
    let marked = mark::read(dir).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => damaged(
            dir,
            format!("its mark {} is unreadable: {e}", mark::path(dir).display()),
        ),
        _ => open_error(e),
    })?;
    if let Some(marked) = marked {
        let _probe = refuse_if_open(dir)?;
        drop_unfinished_snapshots(dir).map_err(open_error)?;
        return Ok(marked);
    }
    if !is_empty_or_missing(dir).map_err(open_error)? {
        return Err(damaged(
            dir,
            format!(
                "its mark {} is missing, so primed cannot tell whether the rest is whole",
                mark::path(dir).display()
            ),
        ));
    }
    fs::create_dir_all(dir).map_err(open_error)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The new directory's own entry, durable before anything is acknowledged in it.
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(open_error)?;
    }
    mark::Mark::open(dir, 1).map_err(open_error)?;
    info!(journal = %dir.display(), event = "journal_created", "created a new, empty journal");
    Ok(1)
}

/// Empty, or holding only the temporary file of a mark whose first write was cut short.
fn is_empty_or_missing(dir: &Path) -> io::Result<bool> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                if entry?.file_name() != mark::TEMPORARY {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Opens sled's log and makes it, and the directory's entries, durable: sled creates its
/// files without syncing the directory, and writes its log without syncing the file's size.
pub fn sync_log(dir: &Path) -> io::Result<fs::File> {
    let log = fs::File::open(dir.join("db"))?;
    log.sync_data()?;
    fs::File::open(dir)?.sync_all()?;
    Ok(log)
}

/// sled's own lock (a `flock` on its log), probed before anything in the directory is
/// touched: a second daemon must not remove a snapshot the first is still writing.
fn refuse_if_open(dir: &Path) -> Result<Option<fs::File>, JournalError> {
    let log = match fs::File::open(dir.join("db")) {
        Ok(log) => log,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(JournalError::Open {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    match log.try_lock() {
        Ok(()) => Ok(Some(log)),
        Err(fs::TryLockError::WouldBlock) => Err(JournalError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(JournalError::Open {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Gets an existing journal ready to be read by a command while no daemon runs on it:
/// refused while one does, and rid of snapshots sled never finished, as a daemon's open is.
pub fn ready_to_read(dir: &Path) -> Result<(), JournalError> {
    let _probe = refuse_if_open(dir)?;
    drop_unfinished_snapshots(dir).map_err(|e| JournalError::Open {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Removes `snap.*.generating` files: snapshots sled began and never renamed into place.
pub fn drop_unfinished_snapshots(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            fs::remove_file(entry.path())?;
            warn!(file = %entry.path().display(), event = "snapshot_dropped",
                  "removed a snapshot that sled never finished writing");
        }
    }
    Ok(())
}

/// Refuses a journal that knows fewer job ids than its mark says were flushed.
pub fn check_complete(dir: &Path, marked: u64, next_id: u64) -> Result<(), JournalError> {
    if next_id < marked {
        return Err(damaged(
            dir,
            format!(
                "it recovered job ids below {next_id} only, but ids below {marked} had been \
                 acknowledged (see {})",
                mark::path(dir).display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_journal_gets_its_mark_first_and_a_marked_one_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        assert_eq!(prepare(&dir).unwrap(), 1);
        assert!(mark::path(&dir).exists());
        mark::Mark::open(&dir, 1).unwrap().flushed(40).unwrap();
        assert_eq!(prepare(&dir).unwrap(), 40);
    }

    #[test]
    fn a_journal_without_its_mark_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("db"), b"sled's log").unwrap();
        let err = prepare(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("mark") && err.contains("missing"), "{err}");
    }

    #[test]
    fn unfinished_snapshots_go_and_finished_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("snap.00000000000001F4.generating"), b"").unwrap();
        fs::write(dir.join("snap.00000000000001F4"), b"a snapshot").unwrap();
        drop_unfinished_snapshots(dir).unwrap();
        assert!(!dir.join("snap.00000000000001F4.generating").exists());
        assert!(dir.join("snap.00000000000001F4").exists());
    }

    #[test]
    fn fewer_ids_than_marked_is_damage() {
        let dir = Path::new("/j");
        assert!(check_complete(dir, 10, 10).is_ok());
        assert!(check_complete(dir, 10, 12).is_ok());
        let err = check_complete(dir, 10, 4).unwrap_err().to_string();
        assert!(err.contains("below 4") && err.contains("below 10"), "{err}");
    }
}
