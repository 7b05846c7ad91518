//! Group commit: one flusher thread makes batches of writes durable with one fsync each.
//!
//! Every applied write that must become durable takes the next [`Ticket`]. The flusher reads the
//! highest ticket, flushes, and publishes it as durable; writes that arrive while a flush runs
//! share the next one. Because a ticket is taken only after its write is applied, a flush that
//! starts after ticket `t` was issued covers every write up to `t`.
//!
//! Flushes start at most once per `pace`: each one costs several I/O calls whatever its size, so
//! under load a short wait buys far larger batches, and an idle journal adds at most `pace` to an
//! acknowledgement.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{BoxFuture, JournalError};

/// Position of a write in the journal's write order.
pub type Ticket = u64;

type FlushFn = Box<dyn Fn() -> Result<(), String> + Send + 'static>;

/// What the flusher has achieved so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Progress {
    /// Every ticket up to this one is durable.
    durable: Ticket,
    /// The newest flush failed for tickets up to this one (and above `durable`).
    failed_through: Ticket,
    error: Option<String>,
}

impl Progress {
    /// `None` while the ticket's fate is unknown.
    fn verdict(&self, ticket: Ticket) -> Option<Result<(), JournalError>> {
        if ticket <= self.durable {
            Some(Ok(()))
        } else if ticket <= self.failed_through {
            let reason = self.error.clone().unwrap_or_default();
            Some(Err(JournalError::Flush(reason)))
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Pending {
    written: Ticket,
    flushed: Ticket,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    progress: watch::Sender<Progress>,
}

pub struct GroupCommit {
    shared: Arc<Shared>,
    flusher: Option<thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher thread around `flush`, which must make all applied writes durable.
    pub fn start(flush: FlushFn, pace: Duration) -> std::io::Result<Self> {
        let (progress, _) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            progress,
        });
        let worker = Arc::clone(&shared);
        let flusher = thread::Builder::new()
            .name("primed-flusher".into())
            .spawn(move || run_flusher(&worker, &flush, pace))?;
        Ok(Self {
            shared,
            flusher: Some(flusher),
        })
    }

    /// Call after a write has been applied; the returned ticket covers it.
    pub fn record(&self) -> Ticket {
        let mut pending = self.lock();
        pending.written += 1;
        let ticket = pending.written;
        drop(pending);
        self.shared.wake.notify_one();
        ticket
    }

    pub fn wait(&self, ticket: Ticket) -> BoxFuture<Result<(), JournalError>> {
        let mut progress = self.shared.progress.subscribe();
        Box::pin(async move {
            let seen = progress
                .wait_for(|p| p.verdict(ticket).is_some())
                .await
                .map_err(|_| JournalError::Closed)?;
            seen.verdict(ticket).unwrap_or(Err(JournalError::Closed))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        lock(&self.shared.pending)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

fn run_flusher(shared: &Shared, flush: &FlushFn, pace: Duration) {
    let mut last_start: Option<Instant> = None;
    while wait_for_writes(shared) {
        if let Some(wait) = last_start.and_then(|t| pace.checked_sub(t.elapsed())) {
            thread::sleep(wait);
        }
        last_start = Some(Instant::now());
        // Read after the pause, so the writes made during it ride along.
        let (target, since) = {
            let pending = lock(&shared.pending);
            (pending.written, pending.flushed)
        };
        let started = Instant::now();
        let outcome = flush();
        crate::metrics::global().flushed(started.elapsed(), target - since);
        shared.progress.send_modify(|p| match outcome {
            Ok(()) => p.durable = target,
            Err(ref reason) => {
                p.failed_through = target;
                p.error = Some(reason.clone());
            }
        });
        lock(&shared.pending).flushed = target;
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Blocks until there are unflushed writes (true), or the journal is closed and drained (false).
fn wait_for_writes(shared: &Shared) -> bool {
    let mut pending = lock(&shared.pending);
    loop {
        if pending.written > pending.flushed {
            return true;
        }
        if pending.closed {
            return false;
        }
        pending = shared
            .wake
            .wait(pending)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_resolve_after_a_flush_that_covers_them() {
        let flushes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&flushes);
        let gc = GroupCommit::start(
            Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
            Duration::ZERO,
        )
        .unwrap();
        let t1 = gc.record();
        let t2 = gc.record();
        gc.wait(t2).await.unwrap();
        gc.wait(t1).await.unwrap();
        assert!(flushes.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn concurrent_writes_share_one_flush() {
        // The first flush blocks until released, so writes made meanwhile must share the second.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let flushes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&flushes);
        let gc = GroupCommit::start(
            Box::new(move || {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = release_rx.lock().unwrap().recv();
                }
                Ok(())
            }),
            Duration::ZERO,
        )
        .unwrap();
        let first = gc.record();
        while flushes.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<Ticket> = (0..100).map(|_| gc.record()).collect();
        release_tx.send(()).unwrap();
        gc.wait(first).await.unwrap();
        for t in later {
            gc.wait(t).await.unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_flush_fails_its_waiters_and_a_later_one_recovers() {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&calls);
        let gc = GroupCommit::start(
            Box::new(move || match counter.fetch_add(1, Ordering::SeqCst) {
                0 => Err("disk full".to_string()),
                _ => Ok(()),
            }),
            Duration::ZERO,
        )
        .unwrap();
        let doomed = gc.record();
        let err = gc.wait(doomed).await.unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        let fine = gc.record();
        tokio::time::timeout(Duration::from_secs(10), gc.wait(fine))
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn verdicts() {
        let p = Progress {
            durable: 5,
            failed_through: 7,
            error: Some("x".into()),
        };
        assert!(matches!(p.verdict(5), Some(Ok(()))));
        assert!(matches!(p.verdict(6), Some(Err(_))));
        assert!(p.verdict(8).is_none());
    }
}
