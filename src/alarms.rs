//! The alarm registry (the book's alarm_handler, whose `tooHot` alarm went off for primes over
//! 100 digits): named conditions that are set and cleared. Each change is logged and stored in
//! the event log; `primed alarms` lists the active ones.
//!
//! Who raises what: a tester raises `big_job` for as long as it runs a job over the digit
//! threshold (an [`AlarmGuard`] clears it however the job ends, the tester's death included);
//! the daemon's monitor raises `backlog`, `restart_storm`, `disk_nearly_full` and
//! `journal_unavailable` (a replicated journal that cannot commit: no quorum, etcd's space
//! quota reached) from periodic readings, through the pure [`evaluate`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::events::{Event, EventKind, Events};
use crate::job::JobId;

pub const BIG_JOB: &str = "big_job";
pub const BACKLOG: &str = "backlog";
pub const RESTART_STORM: &str = "restart_storm";
pub const DISK_NEARLY_FULL: &str = "disk_nearly_full";
pub const JOURNAL_UNAVAILABLE: &str = "journal_unavailable";
/// The subject of the alarms about the daemon as a whole.
pub const DAEMON: &str = "daemon";

/// An active alarm: `{"alarm":"big_job","subject":"tester-2","since_ms":…,"detail":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alarm {
    pub alarm: String,
    /// What it is about: a tester, or `daemon`.
    pub subject: String,
    pub since_ms: u64,
    pub detail: String,
    pub job: Option<JobId>,
}

pub struct Alarms {
    active: Mutex<BTreeMap<(String, String), Alarm>>,
    events: Arc<Events>,
}

impl Alarms {
    pub fn new(events: Arc<Events>) -> Arc<Alarms> {
        Arc::new(Alarms {
            active: Mutex::new(BTreeMap::new()),
            events,
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), Alarm>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Raises `alarm` about `subject`; a no-op if it is already raised.
    pub fn set(&self, alarm: &str, subject: &str, detail: String, job: Option<JobId>) {
        let key = (alarm.to_string(), subject.to_string());
        let mut active = self.lock();
        if active.contains_key(&key) {
            return;
        }
        warn!(alarm, actor = subject, job, detail = %detail, event = "alarm_set", "alarm raised");
        let mut event = Event::new(EventKind::AlarmSet, subject)
            .alarm(alarm)
            .reason(&detail);
        event.job = job;
        active.insert(
            key,
            Alarm {
                alarm: alarm.to_string(),
                subject: subject.to_string(),
                since_ms: event.at_ms,
                detail,
                job,
            },
        );
        drop(active);
        self.events.record(event);
    }

    /// Clears `alarm` about `subject`; a no-op if it is not raised.
    pub fn clear(&self, alarm: &str, subject: &str) {
        self.clear_if(alarm, subject, |_| true);
    }

    /// Clears `alarm` about `subject` if `owned` says the raised one is the caller's: a guard
    /// clears only the alarm of its own job, never one its tester's successor raised since.
    fn clear_if(&self, alarm: &str, subject: &str, owned: impl Fn(&Alarm) -> bool) {
        let key = (alarm.to_string(), subject.to_string());
        let cleared = {
            let mut active = self.lock();
            match active.get(&key) {
                Some(raised) if owned(raised) => active.remove(&key),
                _ => None,
            }
        };
        let Some(cleared) = cleared else {
            return;
        };
        info!(
            alarm,
            actor = subject,
            job = cleared.job,
            event = "alarm_clear",
            "alarm cleared"
        );
        let mut event = Event::new(EventKind::AlarmClear, subject).alarm(alarm);
        event.job = cleared.job;
        self.events.record(event);
    }

    pub fn is_set(&self, alarm: &str, subject: &str) -> bool {
        self.lock()
            .contains_key(&(alarm.to_string(), subject.to_string()))
    }

    /// The active alarms, ordered by name and subject.
    pub fn active(&self) -> Vec<Alarm> {
        self.lock().values().cloned().collect()
    }
}

/// Clears its alarm when dropped: a tester holds one while it runs a big job.
pub struct AlarmGuard {
    alarms: Arc<Alarms>,
    alarm: &'static str,
    subject: String,
    job: Option<JobId>,
}

impl AlarmGuard {
    pub fn set(
        alarms: &Arc<Alarms>,
        alarm: &'static str,
        subject: &str,
        detail: String,
        job: Option<JobId>,
    ) -> AlarmGuard {
        alarms.set(alarm, subject, detail, job);
        AlarmGuard {
            alarms: Arc::clone(alarms),
            alarm,
            subject: subject.to_string(),
            job,
        }
    }
}

impl Drop for AlarmGuard {
    fn drop(&mut self) {
        let job = self.job;
        self.alarms
            .clear_if(self.alarm, &self.subject, |raised| raised.job == job);
    }
}

/// The operator's alarm settings (`[alarms]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct AlarmOptions {
    pub big_job_digits: u64,
    pub thresholds: Thresholds,
    /// How often the monitor reads.
    pub interval: std::time::Duration,
}

/// When the monitor's alarms go off. A raised alarm clears only once its reading is back below
/// nine tenths of the threshold (above it, for the disk), so a reading hovering at the
/// threshold does not flood the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Jobs in flight.
    pub backlog: u64,
    /// Restarts within the last minute.
    pub restarts_per_minute: u64,
    /// Free bytes on the journal's file system.
    pub disk_free_bytes: u64,
}

/// What the monitor reads, once a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readings {
    pub in_flight: u64,
    pub restarts_last_minute: u64,
    /// `None` if the file system could not be read (then the alarm keeps its state).
    pub disk_free_bytes: Option<u64>,
    /// Why the journal cannot commit right now, if it cannot.
    pub journal_unavailable: Option<String>,
}

/// A change for the registry: set (with its detail) or clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(&'static str, String),
    Clear(&'static str),
}

/// The changes the readings call for, given which of the monitor's alarms are raised.
pub fn evaluate(
    readings: &Readings,
    limits: &Thresholds,
    raised: impl Fn(&str) -> bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut rule =
        |alarm: &'static str, over: bool, under: bool, detail: &dyn Fn() -> String| match raised(
            alarm,
        ) {
            false if over => changes.push(Change::Set(alarm, detail())),
            true if under => changes.push(Change::Clear(alarm)),
            _ => {}
        };
    let (n, limit) = (readings.in_flight, limits.backlog);
    rule(BACKLOG, n > limit, n <= limit / 10 * 9, &|| {
        format!("{n} jobs in flight, over the threshold of {limit} (alarms.backlog)")
    });
    let (n, limit) = (readings.restarts_last_minute, limits.restarts_per_minute);
    rule(RESTART_STORM, n > limit, n <= limit / 10 * 9, &|| {
        format!(
            "{n} restarts in the last minute, over the threshold of {limit} (alarms.restart_storm)"
        )
    });
    let unavailable = &readings.journal_unavailable;
    rule(
        JOURNAL_UNAVAILABLE,
        unavailable.is_some(),
        unavailable.is_none(),
        &|| {
            let reason = unavailable.as_deref().unwrap_or_default();
            format!("the journal cannot commit, new jobs are refused: {reason}")
        },
    );
    if let Some(free) = readings.disk_free_bytes {
        let limit = limits.disk_free_bytes;
        rule(
            DISK_NEARLY_FULL,
            free < limit,
            free >= (limit / 10).saturating_mul(11),
            &|| {
                format!(
                    "{} MiB free on the journal's file system, under the threshold of {} MiB \
                 (alarms.disk_free_mb)",
                    free >> 20,
                    limit >> 20
                )
            },
        );
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Thresholds = Thresholds {
        backlog: 100,
        restarts_per_minute: 10,
        disk_free_bytes: 100 << 20,
    };

    fn readings(in_flight: u64, restarts: u64, free_mb: u64) -> Readings {
        Readings {
            in_flight,
            restarts_last_minute: restarts,
            disk_free_bytes: Some(free_mb << 20),
            journal_unavailable: None,
        }
    }

    #[test]
    fn an_uncommitting_journal_raises_an_alarm_until_it_commits_again() {
        let down = Readings {
            journal_unavailable: Some("etcdserver: mvcc: database space exceeded".into()),
            ..readings(0, 0, 1000)
        };
        let changes = evaluate(&down, &LIMITS, |_| false);
        assert!(
            matches!(&changes[..], [Change::Set(JOURNAL_UNAVAILABLE, detail)]
                         if detail.contains("space exceeded"))
        );
        assert!(evaluate(&down, &LIMITS, |a| a == JOURNAL_UNAVAILABLE).is_empty());
        let up = readings(0, 0, 1000);
        assert_eq!(
            evaluate(&up, &LIMITS, |a| a == JOURNAL_UNAVAILABLE),
            vec![Change::Clear(JOURNAL_UNAVAILABLE)]
        );
    }

    #[test]
    fn alarms_go_off_over_their_thresholds() {
        let changes = evaluate(&readings(101, 11, 99), &LIMITS, |_| false);
        let set: Vec<_> = changes
            .iter()
            .map(|c| match c {
                Change::Set(alarm, _) => *alarm,
                Change::Clear(alarm) => panic!("cleared {alarm}"),
            })
            .collect();
        assert_eq!(set, [BACKLOG, RESTART_STORM, DISK_NEARLY_FULL]);
        assert!(matches!(&changes[0], Change::Set(_, d) if d.contains("101 jobs in flight")));
        assert!(evaluate(&readings(100, 10, 100), &LIMITS, |_| false).is_empty());
    }

    #[test]
    fn raised_alarms_clear_with_hysteresis() {
        // The journal's alarm has no hysteresis (it commits or not): left out here.
        let all = |alarm: &str| alarm != JOURNAL_UNAVAILABLE;
        assert!(evaluate(&readings(91, 10, 109), &LIMITS, all).is_empty());
        assert_eq!(
            evaluate(&readings(90, 9, 110), &LIMITS, all),
            [
                Change::Clear(BACKLOG),
                Change::Clear(RESTART_STORM),
                Change::Clear(DISK_NEARLY_FULL)
            ]
        );
    }

    #[test]
    fn a_late_guard_leaves_a_newer_jobs_alarm_alone() {
        let alarms = Alarms::new(Events::new(None));
        let old = AlarmGuard::set(&alarms, BIG_JOB, "tester-1", "job 7".into(), Some(7));
        alarms.clear(BIG_JOB, "tester-1");
        alarms.set(BIG_JOB, "tester-1", "job 8".into(), Some(8));
        drop(old);
        assert_eq!(
            alarms.active().iter().map(|a| a.job).collect::<Vec<_>>(),
            [Some(8)]
        );
    }

    #[test]
    fn a_huge_disk_threshold_does_not_overflow() {
        let huge = Thresholds {
            disk_free_bytes: u64::MAX,
            ..LIMITS
        };
        let changes = evaluate(&readings(0, 0, 1), &huge, |a| a == DISK_NEARLY_FULL);
        assert!(changes.is_empty(), "still under: stays raised");
    }

    #[test]
    fn an_unreadable_disk_keeps_its_alarm() {
        let unknown = Readings {
            disk_free_bytes: None,
            ..readings(0, 0, 0)
        };
        assert!(evaluate(&unknown, &LIMITS, |_| false).is_empty());
        assert!(evaluate(&unknown, &LIMITS, |a| a == DISK_NEARLY_FULL).is_empty());
    }

    #[test]
    fn the_registry_sets_once_and_clears_on_drop() {
        let events = Events::new(None);
        let mut live = events.subscribe();
        let alarms = Alarms::new(events);
        {
            let _guard = AlarmGuard::set(&alarms, BIG_JOB, "tester-1", "job 7".into(), Some(7));
            alarms.set(BIG_JOB, "tester-1", "again".into(), Some(7));
            assert_eq!(alarms.active().len(), 1);
            assert_eq!(alarms.active()[0].detail, "job 7");
        }
        assert!(alarms.active().is_empty());
        let kinds: Vec<_> = std::iter::from_fn(|| live.try_recv().ok())
            .map(|e| (e.kind, e.alarm, e.job))
            .collect();
        assert_eq!(
            kinds,
            [
                (EventKind::AlarmSet, Some(BIG_JOB.to_string()), Some(7)),
                (EventKind::AlarmClear, Some(BIG_JOB.to_string()), Some(7))
            ]
        );
    }
}
