//! What protects the daemon from its clients: the configured limits, the connection slots
//! (with a reserve that only the daemon's own user and root may take, so that a crowd of other
//! users cannot lock out the operator), the back-off of a failing `accept`, and the budget of
//! log lines a client can cause. Pure logic; the accept loop and the connections apply it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Limits that protect the daemon from its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Jobs in flight across all clients before submissions are refused as busy.
    pub max_in_flight: u64,
    /// Free space the journal's filesystem must keep before submissions are refused.
    pub min_free_bytes: u64,
    pub max_digits: usize,
    pub max_frame_bytes: usize,
    /// Jobs one connection may have unanswered before the daemon stops reading from it.
    pub max_outstanding: usize,
    /// Connections open at once (already lowered to fit the file-descriptor limit).
    pub max_connections: usize,
    /// A hello, and the rest of a frame once its first byte came, must arrive within this.
    pub read_timeout: Duration,
    /// A connection owed nothing that asks nothing for this long is closed.
    pub idle_timeout: Duration,
}

/// Descriptors kept back from connections for the journal, logs and the runtime.
const RESERVED_FDS: u64 = 64;

/// The connection cap that the process's descriptor limit `nofile` allows.
pub fn fit_connections(configured: usize, nofile: u64) -> usize {
    let room = nofile.saturating_sub(RESERVED_FDS).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Raises the soft descriptor limit to the hard one (as Go's runtime does) and returns it.
pub fn raise_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: a valid rlimit, within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    limit.rlim_cur
}

/// Open connections against the cap. The last `reserve` slots are for the privileged.
#[derive(Debug)]
pub struct Slots {
    open: AtomicUsize,
    cap: usize,
    reserve: usize,
}

/// One connection's place; freed on drop.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slots {
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            cap,
            reserve: (cap / 16).clamp(1, 64).min(cap.saturating_sub(1)),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A slot, unless the cap (less the reserve, for the unprivileged) is reached.
    pub fn take(self: &Arc<Self>, privileged: bool) -> Option<Slot> {
        let limit = if privileged {
            self.cap
        } else {
            self.cap - self.reserve
        };
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }
}

/// The wait before the next `accept` after `failures` failures in a row: a descriptor shortage
/// (EMFILE) does not go away by retrying at once, and retrying at once spins a core.
pub fn accept_backoff(failures: u32) -> Duration {
    let millis = 5u64.saturating_mul(1 << failures.min(10));
    Duration::from_millis(millis.min(1000))
}

/// At most one log line per `interval` for one kind of client-caused event; the next line
/// allowed says how many were held back.
#[derive(Debug)]
pub struct LogBudget {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogBudget {
    pub const fn new(interval: Duration) -> LogBudget {
        LogBudget {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` if a line may be logged now.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, suppressed) = &mut *state;
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.interval) {
            *suppressed += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_under_the_descriptor_limit() {
        assert_eq!(fit_connections(1024, 1 << 20), 1024);
        assert_eq!(fit_connections(1024, 256), 192);
        assert_eq!(fit_connections(1024, 10), 1);
    }

    #[test]
    fn the_reserve_is_kept_for_the_privileged_and_slots_come_back() {
        let slots = Slots::new(32);
        let others: Vec<Slot> = (0..30).filter_map(|_| slots.take(false)).collect();
        assert_eq!(others.len(), 30, "32 less a reserve of 2");
        assert!(slots.take(false).is_none());
        let owner = slots.take(true).expect("the reserve");
        let _second = slots.take(true).expect("the reserve");
        assert!(slots.take(true).is_none(), "the cap holds for everyone");
        drop(owner);
        assert!(slots.take(true).is_some());
        drop(others);
        assert!(slots.take(false).is_some());
        assert!(
            Slots::new(1).take(false).is_some(),
            "a cap of one has no reserve"
        );
    }

    #[test]
    fn accept_backs_off_to_a_second() {
        assert_eq!(accept_backoff(0), Duration::from_millis(5));
        assert_eq!(accept_backoff(3), Duration::from_millis(40));
        assert_eq!(accept_backoff(100), Duration::from_secs(1));
    }

    #[test]
    fn a_budget_allows_one_line_an_interval_and_counts_the_rest() {
        let budget = LogBudget::new(Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(budget.allow(t), Some(0));
        assert_eq!(budget.allow(t + Duration::from_millis(10)), None);
        assert_eq!(budget.allow(t + Duration::from_millis(20)), None);
        assert_eq!(budget.allow(t + Duration::from_secs(1)), Some(2));
    }
}
