//! Keeping etcd's history bounded: etcd keeps every revision of every key until it is compacted,
//! so a journal that deletes what it prunes still grows without compaction.
//!
//! Every daemon publishes how far its watch has got, `watched/<origin>` → revision, on a lease of
//! its own (so a dead daemon's entry goes with it). The leader compacts, now and then, to the
//! lowest revision that every live watcher has passed: no watch is cancelled by it. (A daemon
//! whose watch was cancelled anyway re-reads the journal; see the follower.) Compaction frees
//! space inside etcd's database for reuse; giving it back to the file system is
//! defragmentation, an operator's step done one member at a time (README).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{leader, lock, prefix_end, Role, State, CALL_TIMEOUT};

/// Longest time between two publications of how far a daemon's watch has got.
const PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// What the chore needs.
pub(super) struct Compactor {
    pub(super) client: Client,
    pub(super) prefix: String,
    pub(super) origin: u64,
    pub(super) lease_ttl: Duration,
    /// How often the leader compacts.
    pub(super) compact_every: Duration,
    pub(super) state: Arc<Mutex<State>>,
    /// The highest revision the follower applied.
    pub(super) seen: watch::Receiver<i64>,
}

/// The revision to compact to, from the revisions the watchers published: the lowest, if it is
/// past what was compacted already.
pub(super) fn target(watched: &[i64], compacted: i64) -> Option<i64> {
    watched
        .iter()
        .copied()
        .min()
        .filter(|&lowest| lowest > compacted)
}

impl Compactor {
    /// Publishes and compacts until `stop` is dropped.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<()>) {
        let mut lease: Option<(i64, watch::Receiver<Option<String>>, Keeper)> = None;
        let mut compacted = 0;
        let mut ticks = 0u64;
        // Publications at least as often as compactions, so that each one sees fresh figures.
        let every = PUBLISH_EVERY
            .min(self.compact_every)
            .max(Duration::from_millis(100));
        let per_compaction = (self.compact_every.as_secs_f64() / every.as_secs_f64()).round();
        let per_compaction = (per_compaction as u64).max(1);
        loop {
            if lease
                .as_ref()
                .is_none_or(|(_, lost, _)| lost.borrow().is_some())
            {
                lease = self.grant().await;
            }
            if let Some((id, _, _)) = &lease {
                self.publish(*id).await;
            }
            ticks += 1;
            if ticks.is_multiple_of(per_compaction) && lock(&self.state).role == Role::Leader {
                compacted = self.compact(compacted).await;
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn grant(&mut self) -> Option<(i64, watch::Receiver<Option<String>>, Keeper)> {
        let ttl = i64::try_from(self.lease_ttl.as_secs().max(2)).unwrap_or(2);
        match tokio::time::timeout(CALL_TIMEOUT, self.client.lease_grant(ttl, None)).await {
            Ok(Ok(granted)) => {
                let (lost, keeper) =
                    leader::keep_alive(self.client.clone(), granted.id(), self.lease_ttl);
                Some((granted.id(), lost, Keeper(keeper)))
            }
            _ => None,
        }
    }

    async fn publish(&mut self, lease: i64) {
        let key = format!("{}watched/{:016x}", self.prefix, self.origin);
        let seen = *self.seen.borrow_and_update();
        let options = PutOptions::new().with_lease(lease);
        let put = self
            .client
            .put(key, seen.to_be_bytes().to_vec(), Some(options));
        // A missed publication only holds compaction back a little.
        let _ = tokio::time::timeout(CALL_TIMEOUT, put).await;
    }

    /// Compacts to what every watcher has passed; returns the revision compacted to.
    async fn compact(&mut self, compacted: i64) -> i64 {
        let prefix = format!("{}watched/", self.prefix);
        let options = GetOptions::new().with_range(prefix_end(&prefix));
        let watched = match tokio::time::timeout(
            CALL_TIMEOUT,
            self.client.get(prefix.clone(), Some(options)),
        )
        .await
        {
            Ok(Ok(reply)) => reply
                .kvs()
                .iter()
                .filter_map(|kv| <[u8; 8]>::try_from(kv.value()).ok())
                .map(i64::from_be_bytes)
                .collect::<Vec<_>>(),
            _ => return compacted,
        };
        let Some(revision) = target(&watched, compacted) else {
            return compacted;
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.client.compact(revision, None)).await {
            Ok(Ok(_)) => {
                info!(
                    revision,
                    watchers = watched.len(),
                    event = "compacted",
                    "compacted etcd's history to what every daemon has seen"
                );
                revision
            }
            // Compacted past it already (by hand, or a leader before us): nothing to do.
            Ok(Err(e)) if e.to_string().contains("compacted") => revision,
            Ok(Err(e)) => {
                warn!(reason = %e, event = "compact_failed", "cannot compact etcd's history");
                compacted
            }
            Err(_) => compacted,
        }
    }
}

/// Stops keeping a lease alive when dropped: it then expires, and its key with it.
struct Keeper(tokio::task::AbortHandle);

impl Drop for Keeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_goes_to_the_slowest_watcher_and_never_back() {
        assert_eq!(target(&[900, 450, 700], 100), Some(450));
        assert_eq!(target(&[900, 450], 450), None, "already there");
        assert_eq!(target(&[], 100), None, "no watcher known: wait");
    }
}
