//! Which dirty keys go into the next transaction: in ticket order, each key once (etcd refuses
//! a txn that writes a key twice, and the mirror's value is the newest anyway), at most
//! [`MAX_OPS`] (etcd's `--max-txn-ops`) and about [`MAX_BYTES`] (under its 1.5 MiB request
//! limit). Pure, so the committer stays a thin loop around it.

use std::collections::{HashSet, VecDeque};

/// etcd's default limit of operations per txn.
pub const MAX_OPS: usize = 128;
/// Per txn of nested txns (a standby's records): etcd allows a nested txn only the
/// operations its parent leaves under the limit, so half of it leaves plenty.
pub const MAX_NESTED_OPS: usize = MAX_OPS / 2;
/// Leaves room under etcd's 1.5 MiB request limit for keys and framing.
pub const MAX_BYTES: usize = 1 << 20;

/// The next batch from the front of `dirty` (each entry a ticket and a key, with the size of
/// its value): the keys, and the highest ticket taken. Entries taken are removed. A key met
/// twice is written once: its value is read from the mirror when the txn is built, so it holds
/// both changes.
pub fn take<K: Clone + Eq + std::hash::Hash>(
    dirty: &mut VecDeque<(u64, K, usize)>,
    max_ops: usize,
) -> (Vec<K>, u64) {
    let (mut keys, mut seen, mut bytes, mut newest) = (Vec::new(), HashSet::new(), 0, 0);
    while let Some((ticket, key, size)) = dirty.front() {
        let full = keys.len() == max_ops || (!keys.is_empty() && bytes + size > MAX_BYTES);
        if full {
            break;
        }
        bytes += size;
        newest = newest.max(*ticket);
        if seen.insert(key.clone()) {
            keys.push(key.clone());
        }
        dirty.pop_front();
    }
    (keys, newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(entries: &[(u64, &'static str, usize)]) -> VecDeque<(u64, &'static str, usize)> {
        entries.iter().copied().collect()
    }

    #[test]
    fn a_key_changed_twice_is_written_once() {
        let mut dirty = queue(&[(1, "a", 10), (2, "b", 10), (3, "a", 10), (4, "c", 10)]);
        assert_eq!(take(&mut dirty, MAX_OPS), (vec!["a", "b", "c"], 4));
        assert!(dirty.is_empty());
    }

    #[test]
    fn batches_respect_etcds_limits() {
        let keys: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let mut dirty: VecDeque<(u64, String, usize)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u64, k.clone(), 1))
            .collect();
        assert_eq!(take(&mut dirty, MAX_OPS).0.len(), MAX_OPS);
        let mut big = VecDeque::from([(1, "x", MAX_BYTES - 5), (2, "y", 10), (3, "z", 1)]);
        assert_eq!(take(&mut big, MAX_OPS), (vec!["x"], 1));
        // A single value over the limit still goes, alone.
        let mut huge = VecDeque::from([(7, "h", 2 * MAX_BYTES)]);
        assert_eq!(take(&mut huge, MAX_OPS), (vec!["h"], 7));
    }
}
