//! The pruner: the background chore that applies the retention policy, one small pass at a
//! time on the blocking pool, so that it never stalls submissions or completions. Passes run
//! back to back while there is more to prune (so pruning keeps up with any rate of work), 100 ms
//! apart while work keeps finishing (so the count stays below `max_kept`, see
//! `Retention::count_target`), and one a second otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Jobs;

/// Least time between two "pruned" lines.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The pause between passes that found nothing more to do.
const PAUSE: Duration = Duration::from_secs(1);
/// The pause after a pass that pruned and caught up: work is finishing, and more will be due
/// soon.
const BUSY_PAUSE: Duration = Duration::from_millis(100);
/// The pause after a pass that failed (a full disk, say): it is retried, and logged at most
/// this often.
const FAILED_PAUSE: Duration = Duration::from_secs(10);

/// Prunes until `closing` turns true.
pub async fn run(jobs: Arc<Jobs>, mut closing: watch::Receiver<bool>) {
    // Pruned since the last line: logged when a pass catches up, at most once a second.
    let mut since_logged = 0;
    let mut logged: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let pass = {
            let jobs = Arc::clone(&jobs);
            tokio::task::spawn_blocking(move || jobs.prune_pass()).await
        };
        let pause = match pass {
            Ok(Ok(pass)) => {
                since_logged += pass.pruned;
                debug!(
                    pruned = pass.pruned,
                    ms = started.elapsed().as_millis() as u64,
                    "pruning pass"
                );
                if pass.more {
                    Duration::ZERO
                } else {
                    // Caught up: say what went, at most once a second.
                    let due = logged.is_none_or(|at| at.elapsed() >= LOG_EVERY);
                    if since_logged > 0 && due {
                        logged = Some(Instant::now());
                        let retained = jobs.retained();
                        info!(
                            pruned = since_logged,
                            kept = retained.kept,
                            pruned_total = retained.pruned,
                            event = "pruned",
                            "pruned finished jobs under the retention policy"
                        );
                        since_logged = 0;
                    }
                    if pass.pruned > 0 {
                        BUSY_PAUSE
                    } else {
                        PAUSE
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(reason = %e, event = "prune_failed", "a pruning pass failed; retrying later");
                FAILED_PAUSE
            }
            Err(e) => {
                warn!(reason = %e, event = "prune_failed", "a pruning pass panicked; retrying later");
                FAILED_PAUSE
            }
        };
        tokio::select! {
            _ = closing.wait_for(|&closing| closing) => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
