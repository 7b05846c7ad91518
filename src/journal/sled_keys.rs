//! The sled backend's key layout and its small helpers: a one-byte kind followed by
//! big-endian integers, so that keys sort numerically (bincode's varints do not).

use serde::Deserialize;

use super::JournalError;
use crate::job::JobId;

pub(super) const JOB: u8 = b'J';
pub(super) const NEXT_ID_KEY: &[u8] = b"Mnext_id";
pub(super) const LOW_WATER_KEY: &[u8] = b"Mlow_water";
pub(super) const FORMAT_KEY: &[u8] = b"Mformat";
/// The sled journal's layout: its records in format 4 (`record::FORMAT`), in block trees.
pub(super) const SLED_FORMAT: u32 = 5;
/// Every finished job below this id is pruned (those still kept below it are kept apart).
pub(super) const PRUNE_FLOOR_KEY: &[u8] = b"Mprune_floor";
/// Format 4's record of where its pruning chunk last begun ends (read by the migration).
/// (Format 4 journals pruned by earlier versions also hold `Mpruned`, ignored.)
pub(super) const PRUNE_INTENT_KEY: &[u8] = b"Mprune_intent";

pub(super) fn job_key(id: JobId) -> [u8; 9] {
    let mut key = [JOB; 9];
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

pub(super) fn describe(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn corrupt(key: &[u8], reason: impl ToString) -> JournalError {
    JournalError::Corrupt {
        key: describe(key),
        reason: reason.to_string(),
    }
}

pub(super) fn storage(operation: &'static str) -> impl FnOnce(sled::Error) -> JournalError {
    move |e| JournalError::Storage {
        operation,
        reason: e.to_string(),
    }
}

pub(super) use super::record::encode;

pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, JournalError> {
    super::record::decode(|| describe(key), bytes)
}

pub(super) fn be_u64(key: &[u8], bytes: &[u8]) -> Result<u64, JournalError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt(key, "expected 8 bytes"))?;
    Ok(u64::from_be_bytes(array))
}

/// The id in a job record's key.
pub(super) fn job_id(key: &[u8]) -> Result<JobId, JournalError> {
    be_u64(key, key.get(1..).unwrap_or_default())
}

pub(super) fn read_counter(tree: &sled::Tree, key: &[u8]) -> Result<u64, JournalError> {
    match tree.get(key).map_err(storage("read counter"))? {
        Some(bytes) => be_u64(key, &bytes),
        None => Ok(0),
    }
}
