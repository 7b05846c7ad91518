//! Chaos soak: the real daemon under a stream of jobs while testers, the balancer and the whole
//! process are killed at random; at the end every acknowledged job must have exactly one,
//! correct answer.
//!
//! - Jobs go through the protocol (`Submit { wait: true }`, pipelined batches within a window of
//!   unanswered jobs), so the soak sees every ack (with its ids) and every `Done`.
//! - Kills: ~70% `Kill { actor: "tester-K" }`, ~20% `Kill { actor: "balancer" }`, ~10% kill -9
//!   of the daemon followed by a restart on the same socket and data dir. They are spread over
//!   the acks of the stream, plus a few during the final sweep (across failovers: ~50% testers,
//!   ~20% balancer, ~30% process kills, at least 3). A daemon that exits on its own
//!   (the root gave up: escalation) is restarted the same way and counted apart.
//! - After a kill -9, numbers whose batch was not acked are forgotten by the soak (they may
//!   still run under ids it never saw). Acked ids still unanswered are asked again on the new
//!   connection with `Results { wait: true }`; at the end, all unanswered ids are swept that
//!   way on a fresh connection, and a sample of all ids is audited once more.
//! - Oracle, independent of the daemon: a sieve of Eratosthenes below `LIMIT` (10^8), Lucas-Lehmer for
//!   the few big Mersenne numbers, and products of two big numbers (composite by construction).
//!
//! Prints `jobs=N acked=N results=N lost=0 wrong=0 duplicates=0 kills=N`, then the kill
//! breakdown and some statistics, and fails on any loss, wrong answer or duplicate.
//!
//! Across failovers (`chaos_soak_failover_*`): two daemons on an etcd journal (a three-member
//! cluster on loopback), each in its own dir as on two machines. The soak talks to the
//! leader; a process kill is a kill -9 of the leader, after which the soak goes on with the
//! standby (which takes over) and the killed daemon comes back in its dir as the new standby.
//!
//! Environment: `CHAOS_SEED` (random seed, printed), `CHAOS_JOBS`, `CHAOS_KILLS`,
//! `CHAOS_TESTERS` (default 2). The long soaks:
//!
//! ```sh
//! cargo test --release --test it -- --ignored --nocapture chaos_soak_long
//! cargo xtask test --release --test it -- --ignored --nocapture chaos_soak_failover_long
//! ```

mod conn;
mod oracle;
mod soak;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use conn::Conn;
use oracle::*;
use soak::*;

use crate::common::etcd::{etcd_primed, Cluster};
use crate::common::{is_prime_by_trial_division, Daemon};
use num_bigint::BigUint;
use primed::job::{JobId, Verdict};
use primed::protocol::{Accepted, Report, Request, Response};
use primed::rng::SplitMix64;

/// Laid over the embedded defaults with `--config`. Restart intensity is set so high that the
/// soak's own kills never make a supervisor give up. (Keys may be renamed: keep them here.)
const CONFIG: &str = "\
[supervision]
max_restarts = 100000
period_secs = 1
";

/// Laid over [`CONFIG`] by the retention soak: answers pruned after two seconds, and at most
/// 5,000 kept.
const RETENTION: &str = "\
[retention]
answers_secs = 2
failures_secs = 2
max_kept = 5000
";

/// Numbers per Submit frame.
const BATCH: usize = 512;
/// Most jobs (submitted or asked for) one connection may have unanswered; well under the
/// daemon's `limits.max_outstanding_per_connection`, so it never stops reading from us.
const WINDOW: usize = 8192;
/// Most ids per Results frame.
const RESULTS_CHUNK: usize = 2048;
/// One big number per this many jobs, on average.
const BIG_EVERY: u64 = 2000;
/// A number every tester panics on (fault injection): a poison job.
const POISON: u64 = 1_000_000_007;
/// One poison job per this many jobs, on average.
const POISON_EVERY: u64 = 5000;
/// Small numbers are below this (the sieve's size).
const LIMIT: u64 = 100_000_000;
/// Ids audited again after the sweep.
const AUDIT_SAMPLE: usize = 20_000;
/// No answer at all for this long while jobs are outstanding fails the soak.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Any single socket operation or kill request.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn chaos_soak_short() {
    run(Params::from_env(20_000, 30));
}

/// With a retention of a few seconds, the pruner runs all the time beside the kills: nothing
/// unfinished is pruned (0 lost), and an id asked for after its pruning is answered "pruned",
/// never "no such job" and never a wrong verdict.
#[test]
fn chaos_soak_retention_short() {
    let mut params = Params::from_env(20_000, 30);
    params.retention = true;
    run(params);
}

#[test]
#[ignore = "long soak: cargo test --release --test it -- --ignored --nocapture chaos_soak_long"]
fn chaos_soak_long() {
    run(Params::from_env(1_000_000, 1_000));
}

#[test]
#[cfg(feature = "etcd")]
fn chaos_soak_failover_short() {
    let mut params = Params::from_env(20_000, 12);
    params.failover = true;
    params.min_process_kills = 3;
    params.process_percent = 30;
    run(params);
}

#[test]
#[cfg(feature = "etcd")]
#[ignore = "long soak: cargo xtask test --release --test it -- --ignored --nocapture chaos_soak_failover_long"]
fn chaos_soak_failover_long() {
    let mut params = Params::from_env(200_000, 200);
    params.failover = true;
    params.min_process_kills = 20;
    params.process_percent = 30;
    run(params);
}

// ---------------------------------------------------------------------------------------------
// Parameters and randomness

#[derive(Debug, Clone)]
struct Params {
    jobs: u64,
    kills: u64,
    testers: u32,
    seed: u64,
    /// Process kills forced if chance did not bring this many.
    min_process_kills: u64,
    /// Two daemons on an etcd journal: a process kill is a failover.
    failover: bool,
    /// The share of kills that kill the process, in percent.
    process_percent: u64,
    /// Finished jobs pruned after a few seconds (see [`RETENTION`]).
    retention: bool,
}

impl Params {
    fn from_env(jobs: u64, kills: u64) -> Params {
        let seed = match std::env::var("CHAOS_SEED") {
            Ok(_) => env_u64("CHAOS_SEED", 0),
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ (u64::from(std::process::id()) << 32)
            }
        };
        let testers = env_u64("CHAOS_TESTERS", 2);
        Params {
            jobs: env_u64("CHAOS_JOBS", jobs),
            kills: env_u64("CHAOS_KILLS", kills),
            testers: u32::try_from(testers)
                .ok()
                .filter(|&t| t > 0)
                .expect("CHAOS_TESTERS must be between 1 and 2^32-1"),
            seed,
            min_process_kills: 2,
            failover: false,
            process_percent: 10,
            retention: false,
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={text:?} is not a non-negative integer: {e}")),
        Err(_) => default,
    }
}

/// Seedable, good enough to pick numbers and victims (the crate's SplitMix64).
struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
}
