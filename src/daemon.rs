//! `primed serve`: opens the journal, binds the socket, starts the supervision tree (which
//! replays everything in flight), serves until SIGINT/SIGTERM, then shuts down in order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ractor::Actor;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use crate::journal::{Journal, SledJournal};
use crate::outcomes::Outcomes;
use crate::pool::PoolContext;
use crate::server::{self, Limits, Shared};
use crate::stats::Stats;
use crate::supervision::{Intensity, Supervisor};
use crate::tree::{self, ROOT};

const TREE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub socket: PathBuf,
    pub data_dir: PathBuf,
    pub testers: u32,
    pub limits: Limits,
    pub cache_bytes: u64,
    pub intensity: Intensity,
}

pub async fn run(options: ServeOptions) -> anyhow::Result<()> {
    let journal = open_journal(&options)?;
    let listener = server::bind(&options.socket)?;
    let ctx = PoolContext {
        journal: Arc::clone(&journal),
        stats: Arc::new(Stats::default()),
        outcomes: Outcomes::start(Arc::clone(&journal)),
        testers: options.testers,
    };
    let spec = tree::root_spec(&ctx, options.intensity);
    let (root, mut root_exit) = Actor::spawn(Some(ROOT.to_string()), Supervisor, spec)
        .await
        .context("starting the supervision tree")?;
    let shared = Arc::new(Shared {
        ctx,
        limits: options.limits,
    });
    let shutdown = shutdown_signal()?;
    let root_gave_up = tokio::select! {
        () = listener.serve(shared, shutdown) => false,
        _ = &mut root_exit => true,
    };
    if root_gave_up {
        error!(
            actor = ROOT,
            event = "exit",
            reason = "restart intensity exceeded",
            "the root supervisor gave up; exiting so that a service manager restarts primed"
        );
        journal.flush()?;
        bail!("the root supervisor gave up (restart intensity exceeded); see the log above");
    }
    info!(event = "shutdown", "stopping the supervision tree");
    let _ = root.stop_and_wait(None, Some(TREE_STOP_TIMEOUT)).await;
    journal.flush()?;
    drop(listener);
    info!(event = "stopped", "journal flushed, socket removed");
    Ok(())
}

fn open_journal(options: &ServeOptions) -> anyhow::Result<Arc<dyn Journal>> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data dir {}", options.data_dir.display()))?;
    let journal = SledJournal::open(&options.data_dir.join("journal"), options.cache_bytes)?;
    let counts = journal.counts();
    info!(data_dir = %options.data_dir.display(), in_flight = counts.in_flight,
          completed = counts.completed, testers = options.testers, event = "journal_open",
          "journal opened");
    Ok(Arc::new(journal))
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        info!(signal = name, event = "signal", "shutdown requested");
    })
}
