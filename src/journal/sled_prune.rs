//! Pruning the sled journal: finished records deleted oldest id first, the prune floor moving
//! up behind them.
//!
//! Deleting in id order is deleting in the order sled wrote: whole segments of its log fall
//! dead and are reused, so the data dir stops growing. (Measured with sled 0.34.7, 5,000,000
//! jobs keeping the newest 1,000,000: 164 MB after 2 M, 143 MB after 4 M and 5 M. Dropping a
//! tree per block of 65,536 ids instead grew 211 → 220 → 245 MB over the same run.)
//!
//! Below the floor a record exists only if it was kept apart (in flight, or a failure kept
//! longer): a missing record there was pruned, so the pruned count is the ids below the floor
//! less those kept apart, counted at open. Those kept apart are looked at again by every pass, a
//! few at a time.
//!
//! Deletions are single-key removes, not sled batches: a batch takes sled's global write lock
//! and stalls every submission and completion while it runs (pruning in batches of 120 cost
//! about a third of the daemon's throughput; single removes about a fifth). What a batch gave,
//! the floor moving with the deletions, an intent gives instead: before a chunk's first
//! removal, `M prune_intent` records where the chunk ends; a chunk cut off by a crash is
//! finished at the next open (what is missing of it was pruned, what is left is kept apart).
//! The floor lookups see moves before the removals, so an id whose record is gone is always
//! below it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::record::JobRecord;
use super::sled_keys::{
    be_u64, corrupt, decode, job_id, job_key, read_counter, storage, PRUNE_FLOOR_KEY,
    PRUNE_INTENT_KEY,
};
use super::{JournalError, Pass, Retained};
use crate::job::JobId;
use crate::retention::{Fate, Retention};

/// Most records kept apart below the floor. Past it an unfinished job stops the pass instead:
/// memory stays bounded, at the price of pruning waiting behind that many stuck jobs.
const MAX_KEPT_APART: usize = 65_536;
/// Deletions per chunk: the floor is written after each.
const DELETES_PER_CHUNK: usize = 120;

pub(super) struct PruneState {
    /// Every finished job below it is pruned, except those kept apart.
    floor: JobId,
    pruned: u64,
    kept_apart: BTreeSet<JobId>,
    /// Where the look at those kept apart resumes.
    apart_cursor: JobId,
    oldest_kept_ms: Option<u64>,
    /// The floor as lookups see it, read without waiting for a pass: at or above `floor`.
    visible: Arc<AtomicU64>,
}

/// A chunk begun: deletions from the floor `from` up to `to` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Intent {
    from: JobId,
    to: JobId,
}

impl Intent {
    fn encode(&self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.from.to_be_bytes());
        bytes[8..].copy_from_slice(&self.to.to_be_bytes());
        bytes
    }

    fn read(tree: &sled::Tree) -> Result<Option<Intent>, JournalError> {
        let Some(bytes) = tree
            .get(PRUNE_INTENT_KEY)
            .map_err(storage("read the pruning intent"))?
        else {
            return Ok(None);
        };
        let field = |at: usize| be_u64(PRUNE_INTENT_KEY, bytes.get(at..at + 8).unwrap_or(&[]));
        let intent = Intent {
            from: field(0)?,
            to: field(8)?,
        };
        if bytes.len() != 16 || intent.to < intent.from {
            return Err(corrupt(PRUNE_INTENT_KEY, "not a pruning intent"));
        }
        Ok(Some(intent))
    }
}

impl PruneState {
    /// Reads the floor (finishing a chunk a crash cut off), which records below it are kept,
    /// and so the count.
    pub(super) fn load(tree: &sled::Tree) -> Result<PruneState, JournalError> {
        let mut floor = read_counter(tree, PRUNE_FLOOR_KEY)?.max(1);
        if let Some(intent) = Intent::read(tree)?.filter(|intent| intent.to > floor) {
            // The floor moves only as a chunk's last write: cut off, it is where the chunk began.
            if intent.from != floor {
                return Err(corrupt(
                    PRUNE_INTENT_KEY,
                    format!("a chunk from {} begun at floor {floor}", intent.from),
                ));
            }
            floor = intent.to;
        }
        let mut kept_apart = BTreeSet::new();
        for key in tree.range(job_key(1)..job_key(floor)).keys() {
            let key = key.map_err(storage("read the records kept apart"))?;
            kept_apart.insert(job_id(&key)?);
        }
        Ok(PruneState {
            floor,
            // Every id below the floor had a record; those without one were pruned.
            pruned: floor - 1 - kept_apart.len() as u64,
            kept_apart,
            apart_cursor: 0,
            oldest_kept_ms: None,
            visible: Arc::new(AtomicU64::new(floor)),
        })
    }

    pub(super) fn floor(&self) -> JobId {
        self.floor
    }

    /// The floor for lookups, which never wait for a pass: an id below it whose record is
    /// missing was pruned.
    pub(super) fn visible_floor(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.visible)
    }

    /// Whether `id`, below the floor, still has its record.
    pub(super) fn is_kept(&self, id: JobId) -> bool {
        self.kept_apart.contains(&id)
    }

    pub(super) fn retained(&self, completed: u64) -> Retained {
        Retained {
            kept: completed.saturating_sub(self.pruned),
            pruned: self.pruned,
            oldest_kept_ms: self.oldest_kept_ms,
        }
    }
}

/// The deletions of a chunk not yet made: ids from the floor up to `to`.
struct Chunk {
    ids: Vec<JobId>,
    to: JobId,
}

impl Chunk {
    fn new(floor: JobId) -> Chunk {
        Chunk {
            ids: Vec::with_capacity(DELETES_PER_CHUNK),
            to: floor,
        }
    }

    fn full(&self) -> bool {
        self.ids.len() >= DELETES_PER_CHUNK
    }

    /// Makes the deletions and moves the floor to `to`: the intent first, then the floor
    /// lookups see, the removals, and the floor. Counts only what was there.
    fn apply(&mut self, tree: &sled::Tree, state: &mut PruneState) -> Result<u64, JournalError> {
        if self.to <= state.floor {
            return Ok(0);
        }
        let intent = Intent {
            from: state.floor,
            to: self.to,
        };
        tree.insert(PRUNE_INTENT_KEY, &intent.encode())
            .map_err(storage("prune"))?;
        state.visible.fetch_max(self.to, Ordering::SeqCst);
        let mut removed = 0;
        for id in self.ids.drain(..) {
            if tree
                .remove(job_key(id))
                .map_err(storage("prune"))?
                .is_some()
            {
                removed += 1;
            }
        }
        state.pruned += removed;
        state.floor = self.to;
        tree.insert(PRUNE_FLOOR_KEY, &state.floor.to_be_bytes())
            .map_err(storage("prune"))?;
        Ok(removed)
    }
}

/// One pass: those kept apart first (a few); then, while too many are kept, the finished jobs
/// below the low-water mark without reading them; then from the floor up, reading each, to the
/// first answer still within its period or the budget.
pub(super) fn pass(
    tree: &sled::Tree,
    state: &mut PruneState,
    (next_id, low_water, completed): (JobId, JobId, u64),
    policy: &Retention,
    now_ms: u64,
    budget: usize,
) -> Result<Pass, JournalError> {
    let mut tally = Tally {
        kept: completed.saturating_sub(state.pruned),
        pruned: 0,
    };
    let mut examined = prune_kept_apart(tree, state, &mut tally, policy, now_ms, budget)?;
    let mut chunk = Chunk::new(state.floor);
    // Too many kept, and every job below the low-water mark is finished: those go whatever
    // they are, without reading them (the common case under steady work).
    let excess = tally.kept.saturating_sub(policy.count_target());
    let blind = excess
        .min(low_water.saturating_sub(state.floor))
        .min(budget.saturating_sub(examined) as u64);
    for id in state.floor..state.floor + blind {
        examined += 1;
        tally.prune(&mut chunk, id);
        chunk.to = id + 1;
        if chunk.full() {
            tally.applied(chunk.apply(tree, state)?);
        }
    }
    let mut stopped = false;
    let mut oldest = None;
    for entry in tree.range(job_key(chunk.to)..job_key(next_id)) {
        if examined >= budget {
            break;
        }
        examined += 1;
        let (key, value) = entry.map_err(storage("scan for pruning"))?;
        let id = job_id(&key)?;
        let record: JobRecord = decode(&key, &value)?;
        let room = state.kept_apart.len() < MAX_KEPT_APART;
        let over = tally.over(policy);
        let fate = match &record.outcome {
            None => policy.fate_unfinished(record.submitted_ms, now_ms, over),
            Some(outcome) => {
                let fate = policy.fate(&outcome.verdict, outcome.completed_ms, now_ms, over);
                if fate != Fate::Prune && oldest.is_none() {
                    oldest = Some(outcome.completed_ms);
                }
                fate
            }
        };
        let fate = match fate {
            Fate::KeepApart if !room => Fate::Stop,
            fate => fate,
        };
        match fate {
            Fate::Stop => {
                stopped = true;
                break;
            }
            Fate::KeepApart => {
                state.kept_apart.insert(id);
            }
            Fate::Prune => tally.prune(&mut chunk, id),
        }
        chunk.to = id + 1;
        if chunk.full() {
            tally.applied(chunk.apply(tree, state)?);
        }
    }
    tally.applied(chunk.apply(tree, state)?);
    if oldest.is_some() || tally.kept == 0 {
        state.oldest_kept_ms = oldest;
    }
    Ok(Pass {
        pruned: tally.pruned,
        more: !stopped && examined >= budget,
    })
}

/// Those kept apart that may go now, a slice of them per pass resuming where the last pass
/// stopped (below the floor, a record gone is counted as pruned at open, whenever it went).
/// Returns how many it looked at.
fn prune_kept_apart(
    tree: &sled::Tree,
    state: &mut PruneState,
    tally: &mut Tally,
    policy: &Retention,
    now_ms: u64,
    budget: usize,
) -> Result<usize, JournalError> {
    let apart: Vec<JobId> = state
        .kept_apart
        .range(state.apart_cursor..)
        .take(budget / 8 + 1)
        .copied()
        .collect();
    state.apart_cursor = apart.last().map_or(0, |&id| id + 1);
    for &id in &apart {
        let key = job_key(id);
        let Some(bytes) = tree.get(key).map_err(storage("read a record kept apart"))? else {
            state.kept_apart.remove(&id);
            continue;
        };
        let record: JobRecord = decode(&key, &bytes)?;
        let Some(outcome) = &record.outcome else {
            continue;
        };
        let over = tally.over(policy);
        if policy.fate(&outcome.verdict, outcome.completed_ms, now_ms, over) == Fate::Prune {
            tree.remove(key).map_err(storage("prune"))?;
            state.kept_apart.remove(&id);
            state.pruned += 1;
            tally.kept = tally.kept.saturating_sub(1);
            tally.pruned += 1;
        }
    }
    Ok(apart.len())
}

/// A pass's running count of what is kept and what it pruned.
struct Tally {
    kept: u64,
    pruned: u64,
}

impl Tally {
    fn over(&self, policy: &Retention) -> bool {
        self.kept > policy.count_target()
    }

    /// `id` is to go with `chunk`: counted as gone from the kept ones at once, so that the
    /// pass knows when enough went.
    fn prune(&mut self, chunk: &mut Chunk, id: JobId) {
        chunk.ids.push(id);
        self.kept = self.kept.saturating_sub(1);
    }

    fn applied(&mut self, removed: u64) {
        self.pruned += removed;
    }
}

#[cfg(test)]
pub(super) mod tests {
    /// Leaves an intent as a chunk cut off by a crash would.
    pub fn leave_intent(tree: &sled::Tree, from: u64, to: u64) {
        let intent = super::Intent { from, to }.encode();
        tree.insert(super::PRUNE_INTENT_KEY, &intent).unwrap();
    }
}
