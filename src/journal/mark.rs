//! The high-water mark: a small file beside sled's own recording the next job id that a flush
//! made durable. sled recovers a damaged log silently (a torn or cut tail is treated as the end
//! of the log, a missing file as a new database), so on open the journal checks that it still
//! knows every id the mark says was flushed: a journal that comes back with less is refused
//! instead of starting short (and handing out acknowledged ids again).
//!
//! The mark is written by the same group commit that acknowledges, after sled's flush and
//! before any of its jobs is acknowledged, so it covers every acknowledged id. It is rewritten
//! only when the next id moved (a flush of completions alone costs nothing here), in place, in
//! one of two checksummed slots taken in turn, and made durable with `fdatasync`: a write torn
//! by a crash spoils only its own slot, and the other still holds the previous mark, which
//! covers every job acknowledged before it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

pub const FILE_NAME: &str = "primed.mark";
/// Where a whole new mark is written before it is renamed into place.
pub const TEMPORARY: &str = "primed.mark.tmp";
/// One slot: `primed-mark <next id> <sequence> <checksum>`, space-padded, ending in a newline.
const SLOT: usize = 96;

/// What one slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    next_id: u64,
    seq: u64,
}

impl Slot {
    fn render(self) -> [u8; SLOT] {
        let text = format!(
            "primed-mark {} {} {:016x}",
            self.next_id,
            self.seq,
            checksum(self.next_id, self.seq)
        );
        let mut bytes = [b' '; SLOT];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        bytes[SLOT - 1] = b'\n';
        bytes
    }

    fn parse(bytes: &[u8]) -> Option<Slot> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut words = text.split_ascii_whitespace();
        let (tag, next_id, seq, sum) = (words.next()?, words.next()?, words.next()?, words.next()?);
        let slot = Slot {
            next_id: next_id.parse().ok()?,
            seq: seq.parse().ok()?,
        };
        let sum = u64::from_str_radix(sum, 16).ok()?;
        (tag == "primed-mark" && sum == checksum(slot.next_id, slot.seq)).then_some(slot)
    }
}

/// FNV-1a over both numbers: enough to tell a torn or garbled slot from a written one.
fn checksum(next_id: u64, seq: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in next_id.to_le_bytes().into_iter().chain(seq.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The newest valid slot's next id, or the value of a mark in the older one-line format
/// (`next_id N`, written whole by rename). `None` if the bytes hold no mark.
fn parse(bytes: &[u8]) -> Option<u64> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Some(value) = text.trim().strip_prefix("next_id ") {
            return value.parse().ok();
        }
    }
    newest_slot(bytes).map(|slot| slot.next_id)
}

fn newest_slot(bytes: &[u8]) -> Option<Slot> {
    bytes
        .chunks(SLOT)
        .take(2)
        .filter_map(Slot::parse)
        .max_by_key(|slot| slot.seq)
}

/// Writes a mark file holding `slot` (and a blank second slot) beside `path`, durably, and
/// renames it into place.
fn replace(dir: &Path, path: &Path, slot: Slot) -> io::Result<()> {
    let temporary = dir.join(TEMPORARY);
    let mut bytes = slot.render().to_vec();
    bytes.extend_from_slice(&[b' '; SLOT]);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temporary)?;
    file.write_all_at(&bytes, 0)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    File::open(dir)?.sync_all()
}

pub fn path(journal_dir: &Path) -> PathBuf {
    journal_dir.join(FILE_NAME)
}

/// The id the stored mark guarantees; `None` if there is no mark file.
pub fn read(journal_dir: &Path) -> io::Result<Option<u64>> {
    let bytes = match fs::read(path(journal_dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    parse(&bytes).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "it holds no readable mark (every slot is garbled)",
        )
    })
}

pub struct Mark {
    /// The next id as applied to the journal (not necessarily flushed yet).
    applied: AtomicU64,
    file: Mutex<Written>,
}

struct Written {
    file: File,
    /// The value and sequence number of the newest slot written.
    last: Slot,
}

impl Mark {
    /// Opens the mark of `journal_dir` (creating it), and makes sure it says at least
    /// `next_id`. A new mark, or one in the older format, is written whole and renamed into
    /// place, so that no crash can leave the journal without a readable mark.
    pub fn open(journal_dir: &Path, next_id: u64) -> io::Result<Mark> {
        let path = path(journal_dir);
        let current = match fs::read(&path) {
            Ok(bytes) => newest_slot(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let last = match current {
            Some(slot) => slot,
            None => {
                let first = Slot { next_id, seq: 1 };
                replace(journal_dir, &path, first)?;
                first
            }
        };
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        let mark = Mark {
            applied: AtomicU64::new(next_id),
            file: Mutex::new(Written { file, last }),
        };
        mark.write(next_id)?;
        Ok(mark)
    }

    pub fn applied(&self, next_id: u64) {
        self.applied.fetch_max(next_id, Ordering::SeqCst);
    }

    /// The value a flush starting now will cover; pass it to `flushed` once the flush is done.
    pub fn before_flush(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Records `covered` (read before a successful flush) durably, if it moved the mark.
    pub fn flushed(&self, covered: u64) -> io::Result<()> {
        self.write(covered)
    }

    fn write(&self, next_id: u64) -> io::Result<()> {
        let mut written = self.lock();
        if next_id <= written.last.next_id {
            return Ok(());
        }
        let slot = Slot {
            next_id,
            seq: written.last.seq + 1,
        };
        let offset = (slot.seq % 2) * SLOT as u64;
        written.file.write_all_at(&slot.render(), offset)?;
        written.file.sync_data()?;
        written.last = slot;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let mark = Mark::open(dir.path(), 1).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(1));
        mark.applied(5);
        mark.flushed(mark.before_flush()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(5));
        mark.flushed(3).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(5), "never backwards");
        mark.flushed(9).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(9));
        drop(mark);
        let again = Mark::open(dir.path(), 9).unwrap();
        again.flushed(10).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(10));
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_mark() {
        let dir = tempfile::tempdir().unwrap();
        let mark = Mark::open(dir.path(), 1).unwrap();
        mark.flushed(7).unwrap();
        mark.flushed(8).unwrap();
        let mut bytes = fs::read(path(dir.path())).unwrap();
        // The slot of 8 (sequence 3, the second slot) torn halfway.
        bytes[SLOT + 20..2 * SLOT].fill(0);
        fs::write(path(dir.path()), &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(7));
        bytes[..SLOT].fill(b'x');
        fs::write(path(dir.path()), &bytes).unwrap();
        assert!(
            read(dir.path()).is_err(),
            "no slot left is an error, not a zero"
        );
    }

    #[test]
    fn the_one_line_format_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), "next_id 42\n").unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(42));
        let _mark = Mark::open(dir.path(), 42).unwrap();
        assert_eq!(fs::read(path(dir.path())).unwrap().len(), 2 * SLOT);
        assert_eq!(read(dir.path()).unwrap(), Some(42));
    }
}
