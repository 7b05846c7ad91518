//! `primed reload` and SIGHUP: re-read the configuration and apply what can change live, the
//! pool's size, the retention policy and the log level. Everything else (socket, data dir, limits) is read at start.
//!
//! Growing: the balancer's table grows first, so the new testers (idle, hence least loaded)
//! get jobs at once; the jobs wait in the balancer until each new tester starts and asks for
//! them. Shrinking: the pool supervisor stops the testers removed first, then the balancer
//! places their jobs (queued, running, or not yet delivered) at the testers that remain, so no
//! job is lost, and none is run by two testers at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::job::TesterId;
use crate::logging::LogControl;
use crate::pool::{BalancerMsg, PoolContext, BALANCER, BALANCER_ACTOR};
use crate::retention::Retention;
use crate::supervision::{Children, SupervisorMsg};
use crate::tree::{tester_specs, POOL};

/// Long enough for a supervisor to stop a few testers (each gets 5 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a reload can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub testers: u32,
    pub log_level: String,
    pub retention: Retention,
}

/// Reads the settings again: the config file, under the same command-line flags.
pub type SettingsSource = Arc<dyn Fn() -> anyhow::Result<Settings> + Send + Sync>;

pub struct Reloader {
    source: SettingsSource,
    log: LogControl,
    ctx: PoolContext,
    pool: Children,
    /// The settings in force; the lock also keeps two reloads from interleaving.
    current: Mutex<Settings>,
}

impl Reloader {
    pub fn new(
        source: SettingsSource,
        log: LogControl,
        ctx: PoolContext,
        pool: Children,
        current: Settings,
    ) -> Reloader {
        Reloader {
            source,
            log,
            ctx,
            pool,
            current: Mutex::new(current),
        }
    }

    /// Applies the configuration as it is now; says what changed, or why nothing could.
    pub async fn reload(&self) -> Result<String, String> {
        let mut current = self.current.lock().await;
        let wanted = (self.source)().map_err(|e| format!("reload refused: {e:#}"))?;
        let mut changes = Vec::new();
        if wanted.log_level != current.log_level {
            self.log
                .set(&wanted.log_level)
                .map_err(|e| format!("{e:#}"))?;
            changes.push(format!(
                "log level {:?} -> {:?}",
                current.log_level, wanted.log_level
            ));
            current.log_level = wanted.log_level;
        }
        if wanted.retention != current.retention {
            self.ctx.jobs.set_retention(wanted.retention);
            changes.push(format!("retention: {}", wanted.retention));
            current.retention = wanted.retention;
        }
        if wanted.testers != current.testers {
            let mut change = format!("testers {} -> {}", current.testers, wanted.testers);
            if let Some(problem) = self.resize(current.testers, wanted.testers).await {
                change.push_str(&format!(" ({problem})"));
            }
            changes.push(change);
            current.testers = wanted.testers;
        }
        let summary = if changes.is_empty() {
            "nothing changed".to_string()
        } else {
            changes.join(", ")
        };
        info!(event = "reload", changes = %summary, "configuration reloaded");
        Ok(summary)
    }

    /// Resizes the pool; says what did not confirm in time. It carries on regardless: a
    /// removed tester's jobs left in the balancer's table would never be answered, while a job
    /// that also runs on at a slow-to-stop tester is only answered once (the journal keeps
    /// the first answer).
    async fn resize(&self, from: u32, to: u32) -> Option<String> {
        self.ctx.pool_size.store(to, Ordering::SeqCst);
        self.pool.set(tester_specs(&self.ctx, to));
        let problems: Vec<String> = if to > from {
            let balancer = resize_balancer(to).await;
            [balancer, reconcile_pool().await]
                .into_iter()
                .flatten()
                .collect()
        } else {
            let pool = reconcile_pool().await;
            // A stopped tester leaves its running slot set; nobody is running there now.
            for k in to + 1..=from {
                self.ctx.activity.take(TesterId(k));
            }
            [pool, resize_balancer(to).await]
                .into_iter()
                .flatten()
                .collect()
        };
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

/// A pool that is restarting needs nothing: it starts from the new list.
async fn reconcile_pool() -> Option<String> {
    let pool = crate::tree::supervisor(POOL);
    if !pool.is_running() {
        return None;
    }
    let reconciled = pool.call(SupervisorMsg::Reconcile, CALL_TIMEOUT).await;
    unconfirmed(POOL, reconciled.is_some())
}

/// A balancer that is restarting needs nothing: it reads the new size when it starts.
async fn resize_balancer(testers: u32) -> Option<String> {
    if !BALANCER_ACTOR.is_running() {
        return None;
    }
    let resized = BALANCER_ACTOR
        .call(|reply| BalancerMsg::Resize(testers, reply), CALL_TIMEOUT)
        .await;
    unconfirmed(BALANCER, resized.is_some())
}

fn unconfirmed(actor: &str, confirmed: bool) -> Option<String> {
    if confirmed {
        return None;
    }
    let reason = format!("{actor} did not confirm the new size within {CALL_TIMEOUT:?}");
    warn!(actor, event = "reload", reason = %reason, "pool resize unconfirmed");
    Some(reason)
}
