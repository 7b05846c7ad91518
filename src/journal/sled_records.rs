//! Where the sled journal keeps a job's record: in the tree of its block of ids, or, once the
//! prune floor has passed it and it had to stay, in the `apart` tree.
//!
//! Records are grouped by id into blocks of [`BLOCK_IDS`], a sled tree each, so that pruning
//! frees disk by dropping a whole tree once the floor has passed its end: sled reclaims a
//! dropped tree's pages at once, where deleted records leave segments half live that it
//! rewrites later (with sled alone, keeping the newest 1,000,000 of 10,000,000 jobs written
//! as this daemon writes them, one key at a time: 71–94k jobs/s dropping trees, 55–65k
//! deleting records, for about a quarter more disk).
//!
//! A record that must outlive its block (in flight, or a failure kept longer) is moved to
//! `apart` as the floor passes it. So below the floor an id has a record only in `apart`, and
//! one without was pruned; from the floor up, records are in their blocks (or in `apart`, for
//! a move that a crash cut off before the floor passed it: `apart` holds the newer copy).
//!
//! Rewrites and moves take one lock, so that no rewrite lands in a copy that was just moved
//! away. A scan of the records (the replay, listings) runs alongside pruning: every move bumps
//! a counter, and a scan that sees it change seeks `apart` again from where it stands, so that
//! it sees a moved job exactly once whether it had passed its block or not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use sled::IVec;

use super::sled_keys::{corrupt, job_id, job_key, storage};
use super::JournalError;
use crate::job::JobId;

/// Ids in one block's tree: small enough that what waits in a block whose floor has not
/// passed its end is little against `max_kept`, large enough that a tree is dropped rarely.
pub(super) const BLOCK_IDS: u64 = 1 << 14;
const BLOCK_PREFIX: &str = "jobs-";
const APART_TREE: &str = "apart";

fn block_of(id: JobId) -> u64 {
    id / BLOCK_IDS
}

pub(super) fn block_name(block: u64) -> String {
    format!("{BLOCK_PREFIX}{block:012x}")
}

fn parse_block(name: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(name).ok()?.strip_prefix(BLOCK_PREFIX)?;
    u64::from_str_radix(hex, 16).ok()
}

/// The first block whose ids are not all below `floor`: those before it may be dropped.
fn first_live_block(floor: JobId) -> u64 {
    block_of(floor)
}

/// Which blocks must exist for ids from `floor` up to `next_id` (exclusive) to have records.
pub(super) fn needed_blocks(floor: JobId, next_id: JobId) -> std::ops::Range<u64> {
    if next_id <= floor {
        return 0..0;
    }
    block_of(floor)..block_of(next_id - 1) + 1
}

/// A sled error that means the tree was dropped under us: everything in it was pruned.
fn dropped(error: &sled::Error) -> bool {
    matches!(error, sled::Error::CollectionNotFound(_))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

pub(super) struct Records {
    db: sled::Db,
    /// The block trees not yet dropped, by block number.
    blocks: RwLock<BTreeMap<u64, sled::Tree>>,
    apart: sled::Tree,
    /// The ids whose record is in `apart`.
    apart_ids: RwLock<BTreeSet<JobId>>,
    /// Bumped by every move into `apart`.
    moves: AtomicU64,
    /// Below it, an id not in `apart` was pruned.
    floor: AtomicU64,
    /// Held by every rewrite and every move.
    rewriting: Mutex<()>,
}

impl Records {
    /// Opens the records of a journal whose prune floor is `floor`, dropping the blocks below
    /// it that a crash left (a floor is written before its blocks are dropped).
    pub(super) fn open(db: &sled::Db, floor: JobId) -> Result<Records, JournalError> {
        let mut blocks = BTreeMap::new();
        for name in db.tree_names() {
            let Some(block) = parse_block(&name) else {
                continue;
            };
            if block < first_live_block(floor) {
                db.drop_tree(&name)
                    .map_err(storage("drop a pruned block"))?;
            } else {
                let tree = db.open_tree(&name).map_err(storage("open a block"))?;
                blocks.insert(block, tree);
            }
        }
        let apart = db.open_tree(APART_TREE).map_err(storage("open apart"))?;
        let mut apart_ids = BTreeSet::new();
        for key in apart.iter().keys() {
            let key = key.map_err(storage("read the records kept apart"))?;
            apart_ids.insert(job_id(&key)?);
        }
        Ok(Records {
            db: db.clone(),
            blocks: RwLock::new(blocks),
            apart,
            apart_ids: RwLock::new(apart_ids),
            moves: AtomicU64::new(0),
            floor: AtomicU64::new(floor),
            rewriting: Mutex::new(()),
        })
    }

    /// The blocks in `needed` that have no tree: their records are lost.
    pub(super) fn missing_blocks(&self, needed: std::ops::Range<u64>) -> Vec<u64> {
        let blocks = read(&self.blocks);
        needed.filter(|b| !blocks.contains_key(b)).collect()
    }

    pub(super) fn floor(&self) -> JobId {
        self.floor.load(Ordering::SeqCst)
    }

    pub(super) fn is_apart(&self, id: JobId) -> bool {
        read(&self.apart_ids).contains(&id)
    }

    fn block(&self, id: JobId) -> Option<sled::Tree> {
        read(&self.blocks).get(&block_of(id)).cloned()
    }

    /// The stored record of `id`, wherever it is; none if it was pruned or never written.
    ///
    /// Takes no lock, so a pass may move the record and drop its block meanwhile: the floor is
    /// read first, and a block copy found gone is looked for in `apart` again (a move comes
    /// before the floor passes the record, and the floor before its block is dropped).
    pub(super) fn get(&self, id: JobId) -> Result<Option<IVec>, JournalError> {
        let key = job_key(id);
        let floor = self.floor();
        if self.is_apart(id) {
            return self.apart.get(key).map_err(storage("read job"));
        }
        if id < floor {
            return Ok(None);
        }
        let copy = match self.block(id).map(|tree| tree.get(key)) {
            Some(Err(e)) if dropped(&e) => None,
            Some(read) => read.map_err(storage("read job"))?,
            None => None,
        };
        match copy {
            Some(bytes) => Ok(Some(bytes)),
            None if self.is_apart(id) => self.apart.get(key).map_err(storage("read job")),
            None => Ok(None),
        }
    }

    /// Writes the record of a job just accepted, in its block (made if it is the first).
    pub(super) fn accept(&self, id: JobId, bytes: Vec<u8>) -> Result<(), JournalError> {
        let tree = match self.block(id) {
            Some(tree) => tree,
            None => self.open_block(block_of(id))?,
        };
        tree.insert(job_key(id), bytes).map_err(storage("accept"))?;
        Ok(())
    }

    fn open_block(&self, block: u64) -> Result<sled::Tree, JournalError> {
        let mut blocks = write(&self.blocks);
        if let Some(tree) = blocks.get(&block) {
            return Ok(tree.clone());
        }
        let tree = self
            .db
            .open_tree(block_name(block))
            .map_err(storage("make a block"))?;
        blocks.insert(block, tree.clone());
        Ok(tree)
    }

    /// Drops every block and empties `apart`: what a migration cut off had copied, which the
    /// older primed may have changed since.
    pub(super) fn clear(db: &sled::Db) -> Result<(), JournalError> {
        for name in db.tree_names() {
            if parse_block(&name).is_some() {
                db.drop_tree(&name).map_err(storage("migrate"))?;
            }
        }
        let apart = db.open_tree(APART_TREE).map_err(storage("migrate"))?;
        apart.clear().map_err(storage("migrate"))
    }

    /// Copies in a record of a format-4 journal: to `apart` below the floor (it was kept
    /// apart there), else to its block.
    pub(super) fn migrate_in(&self, id: JobId, bytes: IVec) -> Result<(), JournalError> {
        if id < self.floor() {
            self.apart
                .insert(job_key(id), bytes)
                .map_err(storage("migrate"))?;
            write(&self.apart_ids).insert(id);
            return Ok(());
        }
        self.accept(id, bytes.to_vec())
    }

    /// Removes the records an accept left from `next_id` on (see `drop_unaccepted`).
    pub(super) fn drop_from(&self, next_id: JobId) -> Result<(), JournalError> {
        let trees: Vec<sled::Tree> = read(&self.blocks)
            .range(block_of(next_id)..)
            .map(|(_, tree)| tree.clone())
            .collect();
        for tree in trees {
            for key in tree.range(job_key(next_id)..).keys() {
                let key = key.map_err(storage("read records past the next id"))?;
                tree.remove(key)
                    .map_err(storage("drop records past the next id"))?;
            }
        }
        Ok(())
    }

    /// Reads the record of `id`, lets `change` alter it, and writes it back where it is, as one
    /// step among rewrites and moves. `change` returning none writes nothing.
    pub(super) fn rewrite<R>(
        &self,
        id: JobId,
        change: impl FnOnce(Option<IVec>) -> Result<Option<(R, Vec<u8>)>, JournalError>,
    ) -> Result<Option<R>, JournalError> {
        let _rewriting = lock(&self.rewriting);
        let Some((changed, bytes)) = change(self.get(id)?)? else {
            return Ok(None);
        };
        let key = job_key(id);
        let written = if self.is_apart(id) {
            self.apart.insert(key, bytes)
        } else {
            match self.block(id) {
                Some(tree) => tree.insert(key, bytes),
                None => return Err(corrupt(&key, "rewrite: its block is gone")),
            }
        };
        written.map_err(storage("rewrite job"))?;
        Ok(Some(changed))
    }

    /// Moves the record of `id` (at or above the floor) to `apart`, before the floor passes it.
    pub(super) fn keep_apart(&self, id: JobId) -> Result<(), JournalError> {
        let _rewriting = lock(&self.rewriting);
        if self.is_apart(id) {
            return Ok(());
        }
        let key = job_key(id);
        let bytes = self
            .block(id)
            .map(|tree| tree.get(key))
            .transpose()
            .map_err(storage("read a job to keep apart"))?
            .flatten()
            .ok_or_else(|| corrupt(&key, "keep apart: no such job"))?;
        self.apart
            .insert(key, bytes)
            .map_err(storage("keep a job apart"))?;
        write(&self.apart_ids).insert(id);
        self.moves.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Deletes a record kept apart: it is pruned.
    pub(super) fn release(&self, id: JobId) -> Result<(), JournalError> {
        // Not while a rewrite (a fault recorded late, say) could write the record back.
        let _rewriting = lock(&self.rewriting);
        write(&self.apart_ids).remove(&id);
        self.apart
            .remove(job_key(id))
            .map_err(storage("prune a job kept apart"))?;
        Ok(())
    }

    /// Moves the floor up to `floor` (already stored).
    pub(super) fn raise_floor(&self, floor: JobId) {
        self.floor.fetch_max(floor, Ordering::SeqCst);
    }

    /// Drops the blocks wholly below the floor.
    pub(super) fn drop_passed(&self) -> Result<(), JournalError> {
        let live = first_live_block(self.floor());
        let passed: Vec<u64> = read(&self.blocks).range(..live).map(|(&b, _)| b).collect();
        for block in passed {
            write(&self.blocks).remove(&block);
            self.db
                .drop_tree(block_name(block))
                .map_err(storage("drop a pruned block"))?;
        }
        Ok(())
    }

    /// How many records kept apart are below `floor`.
    pub(super) fn apart_below(&self, floor: JobId) -> u64 {
        read(&self.apart_ids).range(..floor).count() as u64
    }

    /// Up to `count` ids kept apart from `from` on.
    pub(super) fn apart_from(&self, from: JobId, count: usize) -> Vec<JobId> {
        read(&self.apart_ids)
            .range(from..)
            .take(count)
            .copied()
            .collect()
    }

    /// The ids kept apart within `range`.
    pub(super) fn apart_within(&self, range: std::ops::Range<JobId>) -> Vec<JobId> {
        read(&self.apart_ids).range(range).copied().collect()
    }

    pub(super) fn apart_count(&self) -> usize {
        read(&self.apart_ids).len()
    }

    /// Every record from `from` on, in id order (see the module's note on moves).
    pub(super) fn scan(self: &Arc<Self>, from: JobId) -> Scan {
        Scan {
            records: Arc::clone(self),
            cursor: from,
            moves_seen: None,
            apart: None,
            apart_next: None,
            block: None,
            block_next: None,
        }
    }
}

type Entry = (JobId, IVec);

/// A scan of the records in id order, merging the blocks and `apart`.
pub(super) struct Scan {
    records: Arc<Records>,
    /// The next id it may yield.
    cursor: JobId,
    moves_seen: Option<u64>,
    apart: Option<sled::Iter>,
    apart_next: Option<Entry>,
    /// The block being read and its iterator.
    block: Option<(u64, sled::Iter)>,
    block_next: Option<Entry>,
}

fn entry(item: sled::Result<(IVec, IVec)>) -> Result<Entry, JournalError> {
    let (key, value) = item.map_err(storage("scan jobs"))?;
    Ok((job_id(&key)?, value))
}

impl Scan {
    fn peek_apart(&mut self) -> Result<Option<JobId>, JournalError> {
        let cursor = self.cursor;
        while self.apart_next.as_ref().is_none_or(|(id, _)| *id < cursor) {
            let iter = self
                .apart
                .get_or_insert_with(|| self.records.apart.range(job_key(cursor)..));
            match iter.next() {
                Some(item) => self.apart_next = Some(entry(item)?),
                None => {
                    self.apart_next = None;
                    break;
                }
            }
        }
        Ok(self.apart_next.as_ref().map(|(id, _)| *id))
    }

    fn peek_block(&mut self) -> Result<Option<JobId>, JournalError> {
        let cursor = self.cursor;
        while self.block_next.as_ref().is_none_or(|(id, _)| *id < cursor) {
            self.block_next = None;
            let item = match &mut self.block {
                Some((_, iter)) => iter.next(),
                None => None,
            };
            match item {
                Some(Err(e)) if dropped(&e) => {}
                Some(item) => {
                    self.block_next = Some(entry(item)?);
                    continue;
                }
                None => {}
            }
            // This block is read (or was dropped): on to the next one.
            let after = self.block.as_ref().map_or(block_of(cursor), |(b, _)| b + 1);
            let next = read(&self.records.blocks)
                .range(after.max(block_of(cursor))..)
                .next()
                .map(|(&b, tree)| (b, tree.clone()));
            let Some((block, tree)) = next else {
                self.block = None;
                return Ok(None);
            };
            let start = cursor.max(block * BLOCK_IDS);
            self.block = Some((block, tree.range(job_key(start)..)));
        }
        Ok(self.block_next.as_ref().map(|(id, _)| *id))
    }

    fn step(&mut self) -> Result<Option<Entry>, JournalError> {
        loop {
            let moves = self.records.moves.load(Ordering::SeqCst);
            if self.moves_seen != Some(moves) {
                // A record may have moved behind where `apart` was read: read it again.
                self.apart = None;
                self.apart_next = None;
                self.moves_seen = Some(moves);
            }
            let a = self.peek_apart()?;
            let b = self.peek_block()?;
            // Read before the counter again: a floor that passed a record kept apart came
            // after its move, which the counter then shows.
            let floor = self.records.floor();
            if self.records.moves.load(Ordering::SeqCst) != moves {
                continue;
            }
            let from_apart = match (a, b) {
                (None, None) => return Ok(None),
                (Some(a), Some(b)) => a <= b,
                (a, _) => a.is_some(),
            };
            let (id, value) = if from_apart {
                self.apart_next.take()
            } else {
                self.block_next.take()
            }
            .ok_or_else(|| corrupt(b"", "scan lost its place"))?;
            self.cursor = id + 1;
            if from_apart {
                return Ok(Some((id, value)));
            }
            // A block's copy (one moved since is read from `apart`, as the counter said): one
            // below the floor was pruned.
            if id >= floor {
                return Ok(Some((id, value)));
            }
        }
    }
}

impl Iterator for Scan {
    type Item = Result<Entry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(dir: &std::path::Path) -> Arc<Records> {
        let db = sled::Config::new().path(dir).open().unwrap();
        Arc::new(Records::open(&db, 1).unwrap())
    }

    fn ids(scan: Scan) -> Vec<JobId> {
        scan.map(|e| e.unwrap().0).collect()
    }

    #[test]
    fn blocks_are_named_and_parsed_back() {
        assert_eq!(parse_block(block_name(0x2a).as_bytes()), Some(0x2a));
        assert_eq!(parse_block(b"journal"), None);
        assert_eq!(needed_blocks(5, 5), 0..0);
        assert_eq!(needed_blocks(1, BLOCK_IDS + 1), 0..2);
        assert_eq!(needed_blocks(BLOCK_IDS, BLOCK_IDS + 1), 1..2);
    }

    #[test]
    fn a_scan_sees_a_record_moved_and_its_block_dropped_under_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let records = records(dir.path());
        let ids_written = [3, 5, BLOCK_IDS + 2, BLOCK_IDS + 9, 2 * BLOCK_IDS + 1];
        for id in ids_written {
            records.accept(id, vec![id as u8]).unwrap();
        }
        assert_eq!(ids(records.scan(0)), ids_written);
        // The floor passes the first two blocks; 5 and BLOCK_IDS + 9 had to stay. The scan
        // has read `apart` past 5 when 5 moves there.
        records.keep_apart(BLOCK_IDS + 9).unwrap();
        let mut scan = records.scan(0);
        assert_eq!(scan.next().unwrap().unwrap().0, 3);
        records.keep_apart(5).unwrap();
        records.raise_floor(2 * BLOCK_IDS);
        records.drop_passed().unwrap();
        let rest: Vec<JobId> = scan.map(|e| e.unwrap().0).collect();
        assert_eq!(rest, [5, BLOCK_IDS + 9, 2 * BLOCK_IDS + 1]);
        assert_eq!(records.get(3).unwrap(), None, "pruned");
        assert_eq!(records.get(5).unwrap().unwrap().as_ref(), [5]);
        assert!(!dir_has_block(&records, 0) && !dir_has_block(&records, 1));
    }

    fn dir_has_block(records: &Records, block: u64) -> bool {
        let name = block_name(block);
        records.db.tree_names().iter().any(|n| n == name.as_bytes())
    }

    #[test]
    fn a_scan_reads_a_moved_record_from_apart() {
        let dir = tempfile::tempdir().unwrap();
        let records = records(dir.path());
        for id in 1..=4 {
            records.accept(id, vec![0]).unwrap();
        }
        let mut scan = records.scan(0);
        assert_eq!(scan.next().unwrap().unwrap().0, 1);
        records.keep_apart(3).unwrap();
        records
            .rewrite(3, |_| Ok(Some(((), vec![7]))))
            .unwrap()
            .unwrap();
        let rest: Vec<Entry> = scan.map(Result::unwrap).collect();
        let rest: Vec<(JobId, Vec<u8>)> = rest.into_iter().map(|(i, v)| (i, v.to_vec())).collect();
        assert_eq!(rest, [(2, vec![0]), (3, vec![7]), (4, vec![0])]);
    }
}
