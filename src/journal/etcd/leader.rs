//! Who may write the journal: every daemon on an etcd journal campaigns through etcd's
//! election API on a lease, and only the winner opens the journal for writing. The others
//! wait in the campaign (standby) and take over when the leader's lease expires, that is when
//! its daemon died, froze or lost touch with the cluster for longer than the lease's TTL.
//!
//! The leader's every write is fenced (see the committer): a transaction that also requires the
//! leadership key to be the one this daemon created. A leader that was paused or partitioned
//! past its TTL wakes up deposed: its first write is refused, and it steps down.

use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{info, warn};

/// A won election: the fence every write must pass, and news of losing it. The lease is kept
/// alive until it is lost or [`Leadership::resign`] is called.
pub struct Leadership {
    pub key: Vec<u8>,
    pub revision: i64,
    /// Becomes `Some(reason)` once this daemon can no longer count on its lease.
    pub lost: watch::Receiver<Option<String>>,
    lease: Lease,
}

/// A lease and the task keeping it alive.
struct Lease {
    client: Client,
    id: i64,
    keeper: AbortHandle,
}

impl Lease {
    /// Stops refreshing the lease and revokes it (if etcd can be told), so that whatever it
    /// holds goes at once rather than after its TTL.
    async fn revoke(self) {
        self.keeper.abort();
        let mut client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), client.lease_revoke(self.id)).await;
    }
}

/// A lease nobody holds any more is not kept alive: it expires after its TTL.
impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Leadership {
    /// Gives the leadership up.
    pub async fn resign(self) {
        self.lease.revoke().await;
    }

    /// Passes only while the leadership key is the one this daemon created.
    pub fn fence(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.revision)
    }
}

/// Campaigns until this daemon leads (`name` identifies it to the others).
pub async fn campaign(
    client: &Client,
    election: String,
    name: String,
    ttl: Duration,
) -> Result<Leadership, String> {
    let mut client = client.clone();
    let ttl_secs = i64::try_from(ttl.as_secs().max(2)).unwrap_or(2);
    let lease = client
        .lease_grant(ttl_secs, None)
        .await
        .map_err(|e| format!("cannot get a lease: {e}"))?
        .id();
    let (lost, keeper) = keep_alive(client.clone(), lease, ttl);
    let lease = Lease {
        client: client.clone(),
        id: lease,
        keeper,
    };
    match client.leader(election.clone()).await {
        Ok(current) => {
            let leader = current
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                .unwrap_or_default();
            info!(leader = %leader, event = "standby", "another daemon leads: waiting");
        }
        Err(_) => info!(event = "campaign", "no leader yet: campaigning"),
    }
    // A failed campaign must not leave a live key of ours queued ahead of the next one.
    let mut won = match client.campaign(election, name, lease.id).await {
        Ok(won) => won,
        Err(e) => {
            lease.revoke().await;
            return Err(format!("campaign failed: {e}"));
        }
    };
    let Some(key) = won.take_leader() else {
        lease.revoke().await;
        return Err("the campaign answered without a key".into());
    };
    Ok(Leadership {
        key: key.key().to_vec(),
        revision: key.rev(),
        lost,
        lease,
    })
}

/// Keeps `lease` alive, re-opening the stream when a member dies (the client does not), and
/// reports the lease lost once etcd says it expired. Not before: while the quorum is lost no
/// refresh is acknowledged, yet the lease may well survive (a new raft leader renews leases),
/// and every write is fenced anyway, so the tree keeps running and writes resume with the
/// quorum, or are refused if another daemon took over meanwhile.
pub(super) fn keep_alive(
    client: Client,
    lease: i64,
    ttl: Duration,
) -> (watch::Receiver<Option<String>>, AbortHandle) {
    let (tx, rx) = watch::channel(None);
    let keeper = tokio::spawn(async move {
        let reason = refresh(client, lease, ttl).await;
        warn!(reason = %reason, event = "lease_lost", "leadership lease lost");
        let _ = tx.send(Some(reason));
    });
    (rx, keeper.abort_handle())
}

async fn refresh(mut client: Client, lease: i64, ttl: Duration) -> String {
    let period = ttl / 3;
    loop {
        let opened = tokio::time::timeout(period, client.lease_keep_alive(lease)).await;
        let (mut keeper, mut stream) = match opened {
            Ok(Ok(pair)) => pair,
            // What etcd-client makes of a first reply with ttl 0.
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(reason)))
                if reason == "lease not found" =>
            {
                return "the lease expired".to_string()
            }
            _ => {
                tokio::time::sleep(period / 4).await;
                continue;
            }
        };
        loop {
            let sent = Instant::now();
            let answer = tokio::time::timeout(period, async {
                keeper.keep_alive().await?;
                stream.message().await
            })
            .await;
            match answer {
                Ok(Ok(Some(reply))) if reply.ttl() > 0 => {}
                Ok(Ok(Some(_))) => return "the lease expired".to_string(),
                // A broken stream (its member died) or no quorum: open another.
                _ => break,
            }
            tokio::time::sleep(period.saturating_sub(sent.elapsed())).await;
        }
    }
}
