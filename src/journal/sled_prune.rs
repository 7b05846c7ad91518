//! Pruning the sled journal: the prune floor moved up over finished jobs, oldest id first, and
//! the blocks of ids wholly below it dropped (see `sled_records`).
//!
//! Pruning deletes no record one by one: a job goes by the floor passing it, one write for a
//! whole chunk, and its disk comes back when its block's tree is dropped. A job that must stay
//! as the floor passes (in flight, or a failure kept longer) is moved to `apart` first, and
//! looked at again by later passes, a few at a time. So below the floor a job without a record
//! in `apart` was pruned, and the pruned count is the ids below the floor less those kept
//! apart, counted at open.
//!
//! The order of the writes is what makes a crash harmless (sled recovers a prefix of them):
//! the moves to `apart`, then the floor, then the blocks dropped and the records kept apart
//! that went deleted. Cut off before the floor, a move leaves a copy in `apart` that is the
//! record from then on; cut off after it, the drops are made at the next open, and a record
//! kept apart that was to go is looked at again.

use std::sync::Arc;

use super::record::JobRecord;
use super::sled_keys::{decode, job_key, read_counter, storage, PRUNE_FLOOR_KEY};
use super::sled_records::Records;
use super::{JournalError, Pass, Retained};
use crate::job::JobId;
use crate::retention::{Fate, Retention};

/// Most records kept apart below the floor. Past it an unfinished job stops the pass instead:
/// memory stays bounded, at the price of pruning waiting behind that many stuck jobs.
const MAX_KEPT_APART: usize = 65_536;
/// Ids the floor moves over between two writes of it.
const IDS_PER_CHUNK: u64 = 1024;

pub(super) struct PruneState {
    pruned: u64,
    /// Where the look at those kept apart resumes.
    apart_cursor: JobId,
    oldest_kept_ms: Option<u64>,
}

/// The floor as stored (1 for a journal never pruned).
pub(super) fn stored_floor(meta: &sled::Tree) -> Result<JobId, JournalError> {
    Ok(read_counter(meta, PRUNE_FLOOR_KEY)?.max(1))
}

impl PruneState {
    pub(super) fn load(records: &Records) -> PruneState {
        let floor = records.floor();
        PruneState {
            // Every id below the floor had a record; those not kept apart were pruned.
            pruned: floor - 1 - records.apart_below(floor),
            apart_cursor: 0,
            oldest_kept_ms: None,
        }
    }

    pub(super) fn retained(&self, completed: u64) -> Retained {
        Retained {
            kept: completed.saturating_sub(self.pruned),
            pruned: self.pruned,
            oldest_kept_ms: self.oldest_kept_ms,
        }
    }
}

/// The floor's next move: up to `to`, with the records kept apart that go with it.
struct Chunk {
    to: JobId,
    /// Jobs moved to `apart` by a move a crash cut off, now pruned.
    release: Vec<JobId>,
    pruned: u64,
}

impl Chunk {
    fn new(floor: JobId) -> Chunk {
        Chunk {
            to: floor,
            release: Vec::new(),
            pruned: 0,
        }
    }

    fn full(&self, floor: JobId) -> bool {
        self.to >= floor + IDS_PER_CHUNK
    }

    /// Stores the floor, then drops what it passed. Returns how many were pruned.
    fn apply(
        &mut self,
        meta: &sled::Tree,
        records: &Records,
        state: &mut PruneState,
    ) -> Result<u64, JournalError> {
        if self.to <= records.floor() {
            return Ok(0);
        }
        meta.insert(PRUNE_FLOOR_KEY, &self.to.to_be_bytes())
            .map_err(storage("prune"))?;
        records.raise_floor(self.to);
        let pruned = std::mem::take(&mut self.pruned);
        state.pruned += pruned;
        records.drop_passed()?;
        for id in self.release.drain(..) {
            records.release(id)?;
        }
        Ok(pruned)
    }
}

/// The journal a pass works on, and where it stands.
pub(super) struct Ground<'a> {
    pub meta: &'a sled::Tree,
    pub records: &'a Arc<Records>,
    pub next_id: JobId,
    pub low_water: JobId,
    pub completed: u64,
}

/// One pass: those kept apart first (a few); then, while too many are kept, the finished jobs
/// below the low-water mark without reading them; then from the floor up, reading each, to the
/// first answer still within its period or the budget.
pub(super) fn pass(
    ground: Ground<'_>,
    state: &mut PruneState,
    policy: &Retention,
    now_ms: u64,
    budget: usize,
) -> Result<Pass, JournalError> {
    let Ground {
        meta,
        records,
        next_id,
        low_water,
        completed,
    } = ground;
    let mut tally = Tally {
        kept: completed.saturating_sub(state.pruned),
        pruned: 0,
    };
    let mut examined = prune_kept_apart(records, state, &mut tally, policy, now_ms, budget)?;
    let floor = records.floor();
    let mut chunk = Chunk::new(floor);
    // Too many kept, and every job below the low-water mark is finished: those go whatever
    // they are, without reading them (the common case under steady work).
    let excess = tally.kept.saturating_sub(policy.count_target());
    let blind = excess
        .min(low_water.saturating_sub(floor))
        .min(budget.saturating_sub(examined) as u64);
    examined += blind as usize;
    tally.kept -= blind;
    chunk.pruned += blind;
    chunk.to = floor + blind;
    chunk.release = records.apart_within(floor..chunk.to);
    tally.applied(chunk.apply(meta, records, state)?);
    let mut stopped = false;
    let mut oldest = None;
    let mut scan = records.scan(chunk.to);
    while examined < budget {
        let Some(entry) = scan.next() else { break };
        let (id, value) = entry?;
        if id >= next_id {
            break;
        }
        examined += 1;
        let record: JobRecord = decode(&job_key(id), &value)?;
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
            Fate::KeepApart if !records.is_apart(id) && records.apart_count() >= MAX_KEPT_APART => {
                Fate::Stop
            }
            fate => fate,
        };
        match fate {
            Fate::Stop => {
                stopped = true;
                break;
            }
            Fate::KeepApart => records.keep_apart(id)?,
            Fate::Prune => {
                tally.kept = tally.kept.saturating_sub(1);
                chunk.pruned += 1;
                if records.is_apart(id) {
                    // Moved there by a pass a crash cut off before its floor.
                    chunk.release.push(id);
                }
            }
        }
        chunk.to = id + 1;
        if chunk.full(records.floor()) {
            tally.applied(chunk.apply(meta, records, state)?);
        }
    }
    tally.applied(chunk.apply(meta, records, state)?);
    if oldest.is_some() || tally.kept == 0 {
        state.oldest_kept_ms = oldest;
    }
    Ok(Pass {
        pruned: tally.pruned,
        more: !stopped && examined >= budget,
    })
}

/// Those kept apart that may go now, a slice of them per pass resuming where the last pass
/// stopped. Returns how many it looked at.
fn prune_kept_apart(
    records: &Records,
    state: &mut PruneState,
    tally: &mut Tally,
    policy: &Retention,
    now_ms: u64,
    budget: usize,
) -> Result<usize, JournalError> {
    let floor = records.floor();
    let apart: Vec<JobId> = records
        .apart_from(state.apart_cursor, budget / 8 + 1)
        .into_iter()
        .take_while(|&id| id < floor)
        .collect();
    state.apart_cursor = apart.last().map_or(0, |&id| id + 1);
    for &id in &apart {
        let Some(bytes) = records.get(id)? else {
            continue;
        };
        let record: JobRecord = decode(&job_key(id), &bytes)?;
        let Some(outcome) = &record.outcome else {
            continue;
        };
        let over = tally.over(policy);
        if policy.fate(&outcome.verdict, outcome.completed_ms, now_ms, over) == Fate::Prune {
            records.release(id)?;
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

    fn applied(&mut self, pruned: u64) {
        self.pruned += pruned;
    }
}
