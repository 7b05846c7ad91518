//! The persistent event log: supervision events (crashes, restarts, backoff, escalation,
//! quarantine, replay counts, daemon starts and stops) and alarms set and cleared, stored,
//! bounded, in the journal's data dir so that they survive the crashes they describe. `primed events` lists them; the
//! restart counters behind `primed status` live here too.
//!
//! Storing is best effort: an event that cannot be stored is logged and dropped, because the
//! event log must never be the reason a restart or a job fails.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tracing::warn;

pub use crate::event::{Event, EventKind};
use crate::journal::Journal;

/// Events a slow follower may lag behind before it misses some.
pub const LIVE_BUFFER: usize = 1024;

/// The window of the restart-rate figure in `primed status`.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Where events go: the journal (if any) and the restart counters.
pub struct Events {
    store: Option<Arc<dyn Journal>>,
    /// Every event as it is recorded, for `primed events --follow`.
    live: broadcast::Sender<Event>,
    restarts: AtomicU64,
    recent: Mutex<VecDeque<Instant>>,
    /// Why the last supervisor that gave up did so: the root's is the daemon's exit reason.
    escalation: Mutex<Option<String>>,
}

impl Events {
    pub fn new(store: Option<Arc<dyn Journal>>) -> Arc<Events> {
        Arc::new(Events {
            store,
            live: broadcast::channel(LIVE_BUFFER).0,
            restarts: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            escalation: Mutex::new(None),
        })
    }

    /// New events from now on (a follower that falls behind by [`LIVE_BUFFER`] skips some).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    pub fn set_escalation(&self, reason: &str) {
        *self
            .escalation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_string());
    }

    pub fn escalation(&self) -> Option<String> {
        self.escalation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn record(&self, event: Event) {
        crate::metrics::global().event(event.kind.name());
        if event.kind == EventKind::Restart {
            self.count_restart(Instant::now());
        }
        // No follower is no error.
        let _ = self.live.send(event.clone());
        if let Some(store) = &self.store {
            if let Err(e) = store.record_event(&event) {
                warn!(event_kind = event.kind.name(), reason = %e, "cannot store an event");
            }
        }
    }

    /// The stored events at or after `since_ms`, oldest first (none without a store).
    pub fn stored(&self, since_ms: u64) -> Result<Vec<Event>, crate::journal::JournalError> {
        match &self.store {
            Some(store) => store.events(since_ms),
            None => Ok(Vec::new()),
        }
    }

    fn count_restart(&self, now: Instant) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_back(now);
        prune(&mut recent, now);
    }

    /// Restarts since the daemon started, and within the last [`RATE_WINDOW`].
    pub fn restarts(&self) -> (u64, u64) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        prune(&mut recent, Instant::now());
        (self.restarts.load(Ordering::Relaxed), recent.len() as u64)
    }
}

fn prune(recent: &mut VecDeque<Instant>, now: Instant) {
    while recent
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= RATE_WINDOW)
    {
        recent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_rate_counts_only_the_recent_window() {
        let events = Events::new(None);
        let now = Instant::now();
        events.count_restart(now);
        events.count_restart(now);
        assert_eq!(events.restarts(), (2, 2));
        let mut recent = events.recent.lock().unwrap();
        prune(&mut recent, now + RATE_WINDOW);
        assert!(recent.is_empty());
    }
}
