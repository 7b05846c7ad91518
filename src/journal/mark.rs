//! The high-water mark: a small file in the sled directory recording the next job id as of
//! a recent flush. sled recovers a damaged log silently (a torn or garbled tail is treated as
//! the end of the log, and a missing file as a new database), so on open the journal checks
//! that it still knows every id the mark says it had flushed: a journal that comes back with
//! less is refused instead of starting short, or empty.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The mark is rewritten at most this often: it guards against lost history, not lost seconds
/// (the last moments are the torn tail sled itself handles).
const INTERVAL: Duration = Duration::from_secs(1);

pub struct Mark {
    path: PathBuf,
    /// The next id as applied to the journal (not necessarily flushed yet).
    applied: Arc<AtomicU64>,
    last_write: Mutex<Option<Instant>>,
}

impl Mark {
    pub fn new(journal_dir: &Path, next_id: u64) -> Mark {
        Mark {
            path: journal_dir.join("primed.mark"),
            applied: Arc::new(AtomicU64::new(next_id)),
            last_write: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id the stored mark guarantees, if a mark was ever written.
    pub fn read(&self) -> io::Result<Option<u64>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        parse(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable mark {text:?}"),
            )
        })
    }

    pub fn applied(&self, next_id: u64) {
        self.applied.fetch_max(next_id, Ordering::SeqCst);
    }

    /// The value a flush starting now will cover; pass it to `flushed` once the flush is done.
    pub fn before_flush(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Records `covered` (read before a successful flush) if the interval has passed or `force`.
    pub fn flushed(&self, covered: u64, force: bool) -> io::Result<()> {
        let mut last = self
            .last_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !force && last.is_some_and(|t| t.elapsed() < INTERVAL) {
            return Ok(());
        }
        let temporary = self.path.with_extension("tmp");
        let mut file = fs::File::create(&temporary)?;
        file.write_all(format!("next_id {covered}\n").as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, &self.path)?;
        *last = Some(Instant::now());
        Ok(())
    }
}

fn parse(text: &str) -> Option<u64> {
    text.trim().strip_prefix("next_id ")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_is_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let mark = Mark::new(dir.path(), 1);
        assert_eq!(mark.read().unwrap(), None);
        mark.applied(5);
        let covered = mark.before_flush();
        mark.flushed(covered, false).unwrap();
        assert_eq!(mark.read().unwrap(), Some(5));
        mark.flushed(9, false).unwrap();
        assert_eq!(mark.read().unwrap(), Some(5), "within the interval");
        mark.flushed(9, true).unwrap();
        assert_eq!(mark.read().unwrap(), Some(9));
        fs::write(mark.path(), "garbage").unwrap();
        assert!(mark.read().is_err());
    }
}
