//! `primed bench`: a load generator in the spirit of redis-benchmark. Against a running daemon
//! it measures durable jobs per second and the latency of each job (submit to answer); with
//! `--journal-only` it drives the journal alone, the ceiling the daemon is compared with; with
//! `--http` it goes through the HTTP API instead of the bincode protocol.

mod http;
mod journal_only;
mod latency;
mod load;
mod mix;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

pub use mix::Mix;

const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub socket: PathBuf,
    pub json: bool,
    pub jobs: u64,
    pub connections: usize,
    pub mix: Mix,
    pub batch: usize,
    pub pipeline: usize,
    pub seed: u64,
    /// `Some(dir)`: journal only, in this data dir.
    pub journal_only: Option<PathBuf>,
    /// `Some(socket)`: through the HTTP API on this socket instead of the bincode protocol.
    pub http: Option<PathBuf>,
}

/// The one line `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    jobs: u64,
    seconds: f64,
    jobs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    if options.connections == 0 || options.batch == 0 {
        bail!("--connections and --batch must be at least 1");
    }
    if options.pipeline < options.batch {
        bail!(
            "--pipeline ({}) must be at least --batch ({})",
            options.pipeline,
            options.batch
        );
    }
    let done = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(show_progress(Arc::clone(&done), options.jobs));
    let (measured, seconds) = match &options.journal_only {
        Some(dir) => measure_journal(&options, dir, &done).await?,
        None => measure_daemon(&options, &done).await?,
    };
    progress.abort();
    report(&options, measured, seconds)
}

/// Each connection's index and number of jobs: `jobs` split as evenly as it goes.
fn shares(options: &BenchOptions) -> Vec<(usize, u64)> {
    let (n, jobs) = (options.connections as u64, options.jobs);
    (0..options.connections)
        .map(|i| (i, jobs / n + u64::from((i as u64) < jobs % n)))
        .collect()
}

async fn measure_daemon(
    options: &BenchOptions,
    done: &Arc<AtomicU64>,
) -> anyhow::Result<(Vec<load::Measured>, f64)> {
    let plans: Vec<Vec<Vec<String>>> = shares(options)
        .into_iter()
        .map(|(i, jobs)| {
            load::batches(&load::Plan {
                jobs,
                batch: options.batch,
                mix: options.mix,
                seed: options.seed.wrapping_add(i as u64),
            })
        })
        .collect();
    let started = Instant::now();
    let runs: Vec<_> = plans
        .into_iter()
        .map(|batches| {
            let (socket, done) = (options.socket.clone(), Arc::clone(done));
            let (pipeline, http) = (options.pipeline, options.http.clone());
            tokio::spawn(async move {
                match http {
                    Some(socket) => http::drive(&socket, batches, done).await,
                    None => load::drive(&socket, batches, pipeline, done).await,
                }
            })
        })
        .collect();
    let mut measured = Vec::new();
    for run in runs {
        measured.push(run.await.context("a bench connection panicked")??);
    }
    Ok((measured, started.elapsed().as_secs_f64()))
}

async fn measure_journal(
    options: &BenchOptions,
    dir: &std::path::Path,
    done: &Arc<AtomicU64>,
) -> anyhow::Result<(Vec<load::Measured>, f64)> {
    let journal = journal_only::open(dir)?;
    let started = Instant::now();
    let runs: Vec<_> = shares(options)
        .into_iter()
        .map(|(i, jobs)| {
            let (journal, done) = (Arc::clone(&journal), Arc::clone(done));
            let (batch, seed) = (options.batch, options.seed.wrapping_add(i as u64));
            tokio::spawn(journal_only::drive(journal, jobs, batch, seed, done))
        })
        .collect();
    let mut measured = Vec::new();
    for run in runs {
        measured.push(run.await.context("a journal writer panicked")??);
    }
    Ok((measured, started.elapsed().as_secs_f64()))
}

fn report(
    options: &BenchOptions,
    measured: Vec<load::Measured>,
    seconds: f64,
) -> anyhow::Result<()> {
    let refused: u64 = measured.iter().map(|m| m.refused).sum();
    let mut latencies: Vec<u64> = measured.into_iter().flat_map(|m| m.latencies_us).collect();
    let jobs = latencies.len() as u64;
    let summary = latency::summarise(&mut latencies);
    let report = Report {
        jobs,
        seconds,
        jobs_per_sec: jobs as f64 / seconds.max(f64::EPSILON),
        p50_ms: summary.p50_ms,
        p99_ms: summary.p99_ms,
        p999_ms: summary.p999_ms,
    };
    if options.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let what = match (&options.journal_only, &options.http) {
            (Some(_), _) => "journal only".to_string(),
            (None, Some(_)) => format!(
                "mix {:?}, {} HTTP connections",
                options.mix, options.connections
            ),
            (None, None) => format!("mix {:?}, {} connections", options.mix, options.connections),
        };
        println!(
            "{jobs} jobs in {seconds:.2} s ({what}): {:.0} jobs/s; latency p50 {:.2} ms, \
             p99 {:.2} ms, p99.9 {:.2} ms",
            report.jobs_per_sec, report.p50_ms, report.p99_ms, report.p999_ms
        );
    }
    if refused > 0 {
        bail!(
            "{refused} jobs were not accepted (see `primed status`; is --max-in-flight too low?)"
        );
    }
    Ok(())
}

/// A progress line on stderr: rewritten in place on a terminal, one line a second otherwise.
async fn show_progress(done: Arc<AtomicU64>, total: u64) {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let count = done.load(Ordering::Relaxed);
        let rate = count as f64 / started.elapsed().as_secs_f64();
        let line = format!("bench: {count}/{total} jobs answered, {rate:.0} jobs/s");
        if terminal {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    }
}
