//! `primed serve`: opens the journal, binds the socket, starts the supervision tree (which
//! replays everything in flight) once it leads the journal, serves until SIGINT/SIGTERM, then
//! drains and shuts down in order. If the root supervisor gives up, the daemon exits non-zero
//! with one error line. On a shared journal a daemon serves its socket as a standby until it
//! leads: it accepts jobs into the journal and answers from it, and the leader runs them.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ractor::Actor;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::alarms::{AlarmOptions, Alarms};
use crate::events::{Event, EventKind, Events};
use crate::faults::Faults;
use crate::job::TesterId;
use crate::jobs::{Activity, Admission, Jobs};
#[cfg(feature = "etcd")]
use crate::journal::EtcdJournal;
use crate::journal::{
    Backend, Coordination, Journal, JournalOptions, RemoteChanges, SledJournal, Solo,
};
use crate::logging::LogControl;
use crate::monitor;
use crate::notify::notify;
use crate::pool::{self, PoolContext, ToBalancer, MAX_TESTERS};
use crate::reload::{Reloader, Settings, SettingsSource};
use crate::retention::Retention;
use crate::server::{self, Limits, PeerPolicy, Shared};
use crate::stats::Stats;
use crate::supervision::Supervisor;
use crate::tree::{self, TreeOptions, ROOT};

const TREE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to write their last answers at shutdown.
const CONNECTIONS_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct ServeOptions {
    pub socket: PathBuf,
    /// The HTTP API's Unix socket and optional TCP address.
    pub http: crate::http::HttpOptions,
    pub socket_group: Option<String>,
    pub data_dir: PathBuf,
    pub testers: u32,
    pub limits: Limits,
    pub backend: Backend,
    /// TTL of an etcd journal's leadership lease: how soon a standby takes over.
    pub lease_ttl: Duration,
    /// How often the leader of an etcd journal compacts etcd's history.
    pub compact_every: Duration,
    pub journal: JournalOptions,
    pub tree: TreeOptions,
    pub max_attempts: u32,
    /// How long and how many finished jobs are kept (a reload changes it).
    pub retention: Retention,
    pub faults: Faults,
    pub grace: Duration,
    pub alarms: AlarmOptions,
    /// What `primed reload` and SIGHUP re-read, and the handle that changes the log level.
    pub settings: SettingsSource,
    pub log_level: String,
    pub log: LogControl,
}

/// Why the serving loop ended.
enum Ended {
    Signal,
    RootGaveUp,
    Deposed(String),
}

/// Another daemon took over this daemon's etcd journal. Its tree is stopped; it may campaign
/// again and wait as a standby.
#[derive(Debug, thiserror::Error)]
#[error("deposed: {0}")]
pub struct Deposed(pub String);

/// The root supervisor exceeded its restart intensity; already logged, so printed no more.
#[derive(Debug, thiserror::Error)]
#[error("the root supervisor gave up: {0}")]
pub struct GaveUp(pub String);

pub async fn run(options: ServeOptions) -> anyhow::Result<()> {
    let (journal, coordination) = open_journal(&options).await?;
    let peers = PeerPolicy::new(options.socket_group.as_deref())?;
    let listener = server::bind(&options.socket, &peers)?;
    let http = crate::http::bind(&options.http, &peers, &options.data_dir).await?;
    let events = Events::new(Some(Arc::clone(&journal)));
    events.record(Event::new(EventKind::DaemonStart, ROOT).count(journal.counts().in_flight));
    if !options.faults.is_empty() {
        warn!(event = "faults", "fault injection is on: for tests only");
    }
    let activity = Arc::new(Activity::new(MAX_TESTERS));
    let admission = Admission {
        max_in_flight: options.limits.max_in_flight,
        min_free_bytes: options.limits.min_free_bytes,
        max_digits: options.limits.max_digits,
        data_dir: options.data_dir.clone(),
    };
    let jobs = Jobs::new(
        Arc::clone(&journal),
        Arc::clone(&activity),
        Arc::new(ToBalancer),
        admission,
        options.retention,
    );
    let ctx = PoolContext {
        jobs: Arc::clone(&jobs),
        stats: Arc::new(Stats::default()),
        events: Arc::clone(&events),
        activity: Arc::clone(&activity),
        faults: Arc::new(options.faults.clone()),
        pool_size: Arc::new(AtomicU32::new(options.testers)),
        max_attempts: options.max_attempts,
        alarms: Alarms::new(Arc::clone(&events)),
        big_job_digits: options.alarms.big_job_digits,
    };
    let tree = tree::build(&ctx, &options.tree);
    let reloader = Arc::new(Reloader::new(
        Arc::clone(&options.settings),
        options.log.clone(),
        ctx.clone(),
        tree.pool,
        Settings {
            testers: options.testers,
            log_level: options.log_level.clone(),
            retention: options.retention,
        },
    ));
    let mut tasks = Tasks::default();
    tasks.spawn(reload_on_hangup(Arc::clone(&reloader))?);
    if let Some(changes) = coordination.remote_changes() {
        tasks.spawn(follow_remote(changes, Arc::clone(&jobs)));
    }
    let (close, closing) = watch::channel(false);
    let closing_chores = closing.clone();
    let (alive, mut connections_done) = mpsc::channel(1);
    tasks.spawn(monitor::run(
        ctx.clone(),
        options.data_dir.clone(),
        options.alarms,
        closing.clone(),
    ));
    let shared = Arc::new(Shared {
        ctx,
        coordination: Arc::clone(&coordination),
        reloader,
        limits: options.limits,
        peers,
        slots: server::Slots::new(options.limits.max_connections),
        closing,
        alive,
    });
    // The journal is open and the socket serves (a standby's too: it answers, and takes over
    // by itself), so the service is up as far as its manager is concerned.
    if let Err(e) = notify("READY=1") {
        warn!(reason = %e, "cannot tell the service manager we are ready");
    }
    let signal = shutdown_signal()?;
    let cli = Arc::clone(&shared);
    // Both sockets, until a signal; dropping this stops accepting and removes them.
    let mut serving = Box::pin(async move {
        tokio::select! {
            () = listener.serve(cli, signal) => {}
            () = http.serve(shared) => {}
        }
    });
    let leads = tokio::select! {
        () = &mut serving => false,
        granted = coordination.acquire() => { granted?; true }
    };
    let mut root = None;
    let ended = if leads {
        // Pruning is the chore of the daemon that runs the work.
        tasks.spawn(crate::jobs::pruner::run(
            Arc::clone(&jobs),
            closing_chores.clone(),
        ));
        let (actor, mut root_exit) = Actor::spawn(Some(ROOT.to_string()), Supervisor, tree.root)
            .await
            .context("starting the supervision tree")?;
        root = Some(actor);
        tokio::select! {
            () = &mut serving => Ended::Signal,
            _ = &mut root_exit => Ended::RootGaveUp,
            reason = coordination.revoked() => Ended::Deposed(reason),
        }
    } else {
        Ended::Signal
    };
    // Stop accepting at once: the sockets go, new clients are told nobody is there.
    drop(serving);
    match ended {
        Ended::Signal => {}
        Ended::RootGaveUp => {
            let gave_up = give_up(&events, journal.as_ref());
            coordination.release().await;
            return Err(gave_up.into());
        }
        // Another daemon leads the journal: stop at once, tree and connections (nothing more
        // of ours can be written); the caller campaigns again, as a standby.
        Ended::Deposed(reason) => {
            if let Some(root) = &root {
                let _ = root.kill_and_wait(Some(TREE_STOP_TIMEOUT)).await;
            }
            let _ = close.send(true);
            coordination.release().await;
            return Err(Deposed(reason).into());
        }
    }
    let _ = notify("STOPPING=1");
    drain(&activity, options.grace).await;
    // Jobs still running past the grace are interrupted: their attempt counts on replay.
    for (tester, job, attempt) in activity.running_jobs() {
        if let Err(e) = jobs.attempted(job, attempt) {
            warn!(actor = %tester, job, reason = %e, "cannot record an interrupted attempt");
        }
    }
    if let Some(root) = root {
        info!(event = "shutdown", "stopping the supervision tree");
        let _ = root.stop_and_wait(None, Some(TREE_STOP_TIMEOUT)).await;
    }
    // Answers of jobs finished during the drain go out before the connections close.
    jobs.settle().await;
    let _ = close.send(true);
    if tokio::time::timeout(CONNECTIONS_CLOSE_TIMEOUT, connections_done.recv())
        .await
        .is_err()
    {
        warn!(
            event = "close_timeout",
            "some connections were still writing at exit"
        );
    }
    events.record(Event::new(EventKind::DaemonStop, ROOT));
    let flushed = journal.flush();
    // Whatever the flush did: what was acknowledged is durable, and the standby need not wait.
    coordination.release().await;
    flushed?;
    info!(event = "stopped", "journal flushed, socket removed");
    Ok(())
}

/// This run's background tasks, aborted when it ends however it ends: a deposed daemon runs
/// again in-process, and the old tasks must not keep the old journal (and its lease) alive.
#[derive(Default)]
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Tasks {
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task).abort_handle());
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

/// Passes what other daemons did to a shared journal to the intake, as it is seen.
async fn follow_remote(mut changes: RemoteChanges, jobs: Arc<Jobs>) {
    let mut batch = Vec::new();
    while changes.recv_many(&mut batch, 1024).await > 0 {
        jobs.remote(batch.drain(..));
    }
}

/// Lets running jobs finish (none may start) for up to `grace`.
async fn drain(activity: &Activity, grace: Duration) {
    let grace_secs = grace.as_secs_f64();
    info!(grace_secs, event = "drain", "letting running jobs finish");
    let alive = |tester: TesterId| pool::tester(tester).is_running();
    match tokio::time::timeout(grace, activity.drain(alive)).await {
        Ok(running) => info!(running, event = "drained", "running jobs finished"),
        Err(_) => warn!(
            grace_secs,
            event = "drain_timeout",
            "jobs still running after the grace period; they replay on the next start"
        ),
    }
}

fn give_up(events: &Events, journal: &dyn Journal) -> GaveUp {
    let reason = events
        .escalation()
        .unwrap_or_else(|| "the root supervisor stopped".into());
    error!(actor = ROOT, reason = %reason, event = "gave_up",
           "restart intensity exceeded; exiting non-zero so the service manager restarts primed \
            (the journal replays every unfinished job)");
    events.record(Event::new(EventKind::GaveUp, ROOT).reason(&reason));
    if let Err(e) = journal.flush() {
        warn!(reason = %e, "cannot flush the journal on the way out");
    }
    GaveUp(reason)
}

/// The journal, and what coordinates this daemon with the others on it.
type Opened = (Arc<dyn Journal>, Arc<dyn Coordination>);

async fn open_journal(options: &ServeOptions) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data dir {}", options.data_dir.display()))?;
    let (journal, coordination): Opened = match &options.backend {
        Backend::Sled => {
            let journal = options.data_dir.join("journal");
            refuse_a_foreign_dir(&options.data_dir, &journal)?;
            (
                Arc::new(SledJournal::open(&journal, options.journal)?),
                Arc::new(Solo),
            )
        }
        #[cfg(feature = "etcd")]
        Backend::Etcd(target) => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let name = format!(
                "{} pid {} ({})",
                host.trim(),
                std::process::id(),
                options.socket.display()
            );
            let journal = Arc::new(
                EtcdJournal::open(
                    target.clone(),
                    options.journal,
                    name,
                    options.lease_ttl,
                    options.compact_every,
                )
                .await?,
            );
            (Arc::clone(&journal) as Arc<dyn Journal>, journal)
        }
    };
    let counts = journal.counts();
    info!(data_dir = %options.data_dir.display(), in_flight = counts.in_flight,
          completed = counts.completed, testers = options.testers, event = "journal_open",
          "journal opened");
    Ok((journal, coordination))
}

/// A data dir with no journal is made one only if it is empty: a wrong `--data-dir` (a home
/// directory, another program's) is an error, not a silent start from job id 1.
fn refuse_a_foreign_dir(data_dir: &Path, journal: &Path) -> anyhow::Result<()> {
    if journal.exists() {
        return Ok(());
    }
    let entries = std::fs::read_dir(data_dir)
        .with_context(|| format!("cannot read data dir {}", data_dir.display()))?;
    let foreign: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lost+found")
        .take(3)
        .collect();
    if !foreign.is_empty() {
        anyhow::bail!(
            "data dir {} holds no primed journal but is not empty ({}…): is it the right \
             --data-dir? primed makes a new journal only in an empty or new directory",
            data_dir.display(),
            foreign.join(", ")
        );
    }
    Ok(())
}

/// SIGHUP reloads the configuration, as for most daemons.
fn reload_on_hangup(
    reloader: Arc<Reloader>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    Ok(async move {
        while hangup.recv().await.is_some() {
            info!(signal = "SIGHUP", event = "signal", "reload requested");
            if let Err(reason) = reloader.reload().await {
                warn!(event = "reload_failed", reason = %reason, "configuration not reloaded");
            }
        }
    })
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
