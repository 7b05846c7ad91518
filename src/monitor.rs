//! The daemon's monitor: once a period it reads the backlog, the restart rate, the journal's
//! free space and whether the journal commits, and sets or clears their alarms by the rules of [`alarms::evaluate`].

use std::path::PathBuf;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::alarms::{self, AlarmOptions, Change, Readings, DAEMON};
use crate::jobs::free_bytes;
use crate::pool::PoolContext;

/// Runs until `closing` turns true.
pub async fn run(
    ctx: PoolContext,
    data_dir: PathBuf,
    options: AlarmOptions,
    mut closing: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.wait_for(|&closing| closing) => return,
        }
        let readings = read(&ctx, &data_dir).await;
        let raised = |alarm: &str| ctx.alarms.is_set(alarm, DAEMON);
        for change in alarms::evaluate(&readings, &options.thresholds, raised) {
            match change {
                Change::Set(alarm, detail) => ctx.alarms.set(alarm, DAEMON, detail, None),
                Change::Clear(alarm) => ctx.alarms.clear(alarm, DAEMON),
            }
        }
    }
}

async fn read(ctx: &PoolContext, data_dir: &std::path::Path) -> Readings {
    let dir = data_dir.to_path_buf();
    // statvfs can block (a network file system): not on the runtime's workers.
    let free = tokio::task::spawn_blocking(move || free_bytes(&dir))
        .await
        .ok()
        .and_then(Result::ok);
    Readings {
        in_flight: ctx.jobs.counts().in_flight,
        restarts_last_minute: ctx.events.restarts().1,
        disk_free_bytes: free,
        journal_unavailable: ctx.jobs.unavailable(),
    }
}
