//! Becoming the leader: campaigning until elected, catching the mirror up with everything the
//! previous leader wrote, and only then writing as the leader; also the reads a daemon makes
//! of etcd itself when its mirror may lag (who leads, a job not seen yet).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, Compare, GetOptions, Txn, TxnOp};
use tokio::sync::watch;
use tracing::{info, warn};

use super::commit::watch_lease;
use super::{job_key, leader, lock, EtcdTarget, Role, State, CALL_TIMEOUT};
use crate::job::JobId;
use crate::journal::JournalError;

/// Pause before campaigning again after a failed campaign.
const CAMPAIGN_PAUSE: Duration = Duration::from_secs(1);

/// What campaigning needs, apart from the journal (so that it can outlive a borrow of it).
#[derive(Clone)]
pub(super) struct Candidate {
    pub(super) client: Client,
    pub(super) target: EtcdTarget,
    pub(super) name: String,
    pub(super) lease_ttl: Duration,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) seen: watch::Receiver<i64>,
    pub(super) deposer: Arc<watch::Sender<Option<String>>>,
    /// Held while leading: given up at shutdown.
    pub(super) leadership: Arc<Mutex<Option<leader::Leadership>>>,
}

impl Candidate {
    /// Campaigns until elected, then makes sure the mirror holds everything written before
    /// (a fenced write, awaited on the watch: everything before it was seen) and only then
    /// writes as the leader. A failed campaign is tried again.
    pub(super) async fn take_lead(self) -> Result<(), JournalError> {
        let election = format!("{}leader", self.target.prefix);
        loop {
            let leadership = match leader::campaign(
                &self.client,
                election.clone(),
                self.name.clone(),
                self.lease_ttl,
            )
            .await
            {
                Ok(leadership) => leadership,
                Err(reason) => {
                    warn!(reason = %reason, event = "campaign_failed", "campaigning again");
                    tokio::time::sleep(CAMPAIGN_PAUSE).await;
                    continue;
                }
            };
            info!(journal = %self.target, event = "elected",
                  "this daemon leads: catching up with the journal");
            let fence = leadership.fence();
            let revision = match self.mark_epoch(&fence, leadership.revision).await {
                Ok(revision) => revision,
                Err(reason) => {
                    warn!(reason = %reason, event = "campaign_failed", "campaigning again");
                    leadership.resign().await;
                    tokio::time::sleep(CAMPAIGN_PAUSE).await;
                    continue;
                }
            };
            let mut seen = self.seen.clone();
            seen.wait_for(|&seen| seen >= revision)
                .await
                .map_err(|_| JournalError::Closed)?;
            {
                let mut state = lock(&self.state);
                state.role = Role::Leader;
                state.fence = Some(fence);
            }
            tokio::spawn(watch_lease(
                leadership.lost.clone(),
                Arc::clone(&self.state),
                Arc::clone(&self.deposer),
            ));
            *self
                .leadership
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(leadership);
            info!(journal = %self.target, revision, event = "leading", "caught up: leading");
            return Ok(());
        }
    }

    /// The new leader's first write, `epoch` = its election revision: fenced, so it proves
    /// the election still holds, and its revision is where the mirror must have caught up to.
    async fn mark_epoch(&self, fence: &Compare, epoch: i64) -> Result<i64, String> {
        let put = TxnOp::put(
            format!("{}epoch", self.target.prefix),
            epoch.to_be_bytes().to_vec(),
            None,
        );
        let txn = Txn::new().when([fence.clone()]).and_then([put]);
        let mut client = self.client.clone();
        match tokio::time::timeout(CALL_TIMEOUT, client.txn(txn)).await {
            Ok(Ok(reply)) if reply.succeeded() => reply
                .header()
                .map(|header| header.revision())
                .ok_or_else(|| "etcd answered the epoch write without a revision".to_string()),
            Ok(Ok(_)) => Err("lost the election before the first write".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer from etcd within {CALL_TIMEOUT:?}")),
        }
    }

    /// Reads job `id` from etcd itself, and if it is there, waits (for a while) until the
    /// watch has brought it into the mirror.
    pub(super) async fn catch_up(self, id: JobId) {
        let mut client = self.client.clone();
        let key = job_key(&self.target.prefix, id);
        let options = GetOptions::new().with_keys_only();
        let written = match tokio::time::timeout(CALL_TIMEOUT, client.get(key, Some(options))).await
        {
            Ok(Ok(reply)) => reply.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        };
        if let Some(revision) = written {
            let mut seen = self.seen.clone();
            let _ =
                tokio::time::timeout(CALL_TIMEOUT, seen.wait_for(|&seen| seen >= revision)).await;
        }
    }

    /// Asks etcd who leads (for `status` on a standby).
    pub(super) async fn leader_name(&self) -> Option<String> {
        let mut client = self.client.clone();
        let election = format!("{}leader", self.target.prefix);
        let reply = tokio::time::timeout(CALL_TIMEOUT, client.leader(election))
            .await
            .ok()?
            .ok()?;
        reply
            .kv()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    }
}
