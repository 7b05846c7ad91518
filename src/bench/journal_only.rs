//! `primed bench --journal-only`: the same journal code the daemon runs for every job (accept
//! a batch, complete), with the same durability (every batch and every answer
//! waits for its group-commit flush), and no actors and no socket: the in-run ceiling that the
//! end-to-end figure is compared with.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::latency::micros;
use super::load::Measured;
use super::mix::Rng;
use crate::job::{Task, Verdict};
use crate::journal::{Journal, JournalOptions, SledJournal};
use crate::number::Number;
use crate::primality::is_prime_u64;

/// Opens a journal in `data_dir` sized as the daemon's default one.
pub fn open(data_dir: &Path) -> anyhow::Result<Arc<dyn Journal>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let options = JournalOptions {
        cache_bytes: 64 << 20,
        max_events: 10_000,
    };
    Ok(Arc::new(SledJournal::open(
        &data_dir.join("journal"),
        options,
    )?))
}

/// One writer's share: batches of u64 jobs through the whole journal life of a job.
pub async fn drive(
    journal: Arc<dyn Journal>,
    jobs: u64,
    batch: usize,
    seed: u64,
    done: Arc<AtomicU64>,
) -> anyhow::Result<Measured> {
    let mut rng = Rng::new(seed);
    let mut measured = Measured::default();
    let mut left = jobs;
    while left > 0 {
        let size = left.min(batch as u64);
        left -= size;
        let tasks: Vec<Task> = (0..size)
            .map(|_| Task::Test(Number::Small(rng.next_u64() | 1)))
            .collect();
        let started = Instant::now();
        let (accepted, ticket) = journal.accept(tasks)?;
        journal.durable(ticket).await?;
        let mut last = ticket;
        for job in &accepted {
            let prime = matches!(job.task, Task::Test(Number::Small(n)) if is_prime_u64(n));
            last = journal.complete(job.id, Verdict::tested(prime), 1)?.1;
        }
        journal.durable(last).await?;
        let latency = micros(started.elapsed());
        measured
            .latencies_us
            .extend(std::iter::repeat_n(latency, accepted.len()));
        done.fetch_add(size, Ordering::Relaxed);
    }
    Ok(measured)
}
