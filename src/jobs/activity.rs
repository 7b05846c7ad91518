//! What each tester is running right now, kept outside the tester so that it outlives a crash:
//! the tester's child spec blames a crash on the job that was running (poison jobs), and
//! shutdown waits for running jobs to finish and lets no new one start (drain).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::job::{JobId, TesterId};

/// Job ids start at 1, so 0 marks an idle slot.
const IDLE: JobId = 0;

#[derive(Default)]
struct Slot {
    job: AtomicU64,
    attempt: AtomicU32,
}

pub struct Activity {
    slots: Vec<Slot>,
    draining: AtomicBool,
    idle: Notify,
}

impl Activity {
    pub fn new(testers: u32) -> Activity {
        Activity {
            slots: (0..testers).map(|_| Slot::default()).collect(),
            draining: AtomicBool::new(false),
            idle: Notify::new(),
        }
    }

    fn slot(&self, tester: TesterId) -> Option<&Slot> {
        self.slots.get((tester.0 as usize).checked_sub(1)?)
    }

    /// Marks `tester` as running attempt `attempt` of `job`; false while draining, when no
    /// job may start (it stays in the journal and replays on the next start).
    pub fn begin(&self, tester: TesterId, job: JobId, attempt: u32) -> bool {
        let Some(slot) = self.slot(tester) else {
            return true;
        };
        slot.attempt.store(attempt, Ordering::SeqCst);
        slot.job.store(job, Ordering::SeqCst);
        // Set before checking: either drain sees this job running, or this sees the drain.
        if self.draining.load(Ordering::SeqCst) {
            self.end(tester);
            return false;
        }
        true
    }

    pub fn end(&self, tester: TesterId) {
        if let Some(slot) = self.slot(tester) {
            slot.job.store(IDLE, Ordering::SeqCst);
            if self.draining.load(Ordering::SeqCst) {
                self.idle.notify_waiters();
            }
        }
    }

    /// The job `tester` was running, if any, and marks it idle: for the tester's successor.
    pub fn take(&self, tester: TesterId) -> Option<(JobId, u32)> {
        let slot = self.slot(tester)?;
        let job = slot.job.swap(IDLE, Ordering::SeqCst);
        self.idle.notify_waiters();
        (job != IDLE).then(|| (job, slot.attempt.load(Ordering::SeqCst)))
    }

    /// Every job running now, with its tester and attempt.
    pub fn running_jobs(&self) -> Vec<(TesterId, JobId, u32)> {
        (1..=self.slots.len() as u32)
            .map(TesterId)
            .filter_map(|t| {
                let slot = self.slot(t)?;
                let job = slot.job.load(Ordering::SeqCst);
                (job != IDLE).then(|| (t, job, slot.attempt.load(Ordering::SeqCst)))
            })
            .collect()
    }

    /// The attempt running `job` now, if a tester runs it.
    pub fn running_attempt(&self, job: JobId) -> Option<u32> {
        self.running_jobs()
            .into_iter()
            .find_map(|(_, running, attempt)| (running == job).then_some(attempt))
    }

    /// The job `tester` runs now, if any.
    pub fn running_at(&self, tester: TesterId) -> Option<JobId> {
        let job = self.slot(tester)?.job.load(Ordering::SeqCst);
        (job != IDLE).then_some(job)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Testers running a job; `alive` filters out slots a stopped tester left set.
    fn running(&self, alive: &impl Fn(TesterId) -> bool) -> usize {
        (1..=self.slots.len() as u32)
            .map(TesterId)
            .filter(|&t| {
                self.slot(t)
                    .is_some_and(|s| s.job.load(Ordering::SeqCst) != IDLE)
            })
            .filter(|&t| alive(t))
            .count()
    }

    /// Stops new jobs from starting and resolves once no live tester runs one; returns how
    /// many were running when the drain began.
    pub async fn drain(&self, alive: impl Fn(TesterId) -> bool) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        let running = self.running(&alive);
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.running(&alive) == 0 {
                return running;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_slot_left_by_a_stopped_tester_does_not_hold_up_a_drain() {
        let activity = Activity::new(2);
        assert!(activity.begin(TesterId(2), 9, 1));
        let drain = activity.drain(|t| t != TesterId(2));
        let running = tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .expect("the drain does not wait for a tester that is gone");
        assert_eq!(running, 0);
    }

    #[test]
    fn a_crashed_job_is_found_once() {
        let activity = Activity::new(2);
        assert!(activity.begin(TesterId(2), 17, 3));
        assert_eq!(activity.take(TesterId(2)), Some((17, 3)));
        assert_eq!(activity.take(TesterId(2)), None);
        assert!(activity.begin(TesterId(1), 18, 1));
        assert_eq!(activity.running_jobs(), vec![(TesterId(1), 18, 1)]);
        activity.end(TesterId(1));
        assert_eq!(activity.take(TesterId(1)), None);
        assert!(activity.running_jobs().is_empty());
    }

    #[tokio::test]
    async fn drain_waits_for_running_jobs_and_refuses_new_ones() {
        let activity = Arc::new(Activity::new(2));
        assert!(activity.begin(TesterId(1), 5, 1));
        let draining = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.drain(|_| true).await }
        });
        while !activity.is_draining() {
            tokio::task::yield_now().await;
        }
        assert!(
            !activity.begin(TesterId(2), 6, 1),
            "no new job during a drain"
        );
        assert!(!draining.is_finished());
        activity.end(TesterId(1));
        let was_running = tokio::time::timeout(Duration::from_secs(5), draining)
            .await
            .expect("drain finished")
            .unwrap();
        assert_eq!(was_running, 1);
    }
}
