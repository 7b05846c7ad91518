//! The sled backend's key layout and its small helpers: a one-byte kind followed by
//! big-endian integers, so that keys sort numerically (bincode's varints do not).

use serde::Deserialize;

use super::JournalError;
use crate::job::JobId;

pub(super) const JOB: u8 = b'J';
pub(super) const NEXT_ID_KEY: &[u8] = b"Mnext_id";
pub(super) const LOW_WATER_KEY: &[u8] = b"Mlow_water";
pub(super) const FORMAT_KEY: &[u8] = b"Mformat";
/// Every finished job below this id is pruned (those still kept below it are kept apart).
pub(super) const PRUNE_FLOOR_KEY: &[u8] = b"Mprune_floor";
/// How many records were pruned, ever.
pub(super) const PRUNED_KEY: &[u8] = b"Mpruned";

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
