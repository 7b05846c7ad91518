//! The daemon's instruments for Prometheus: counters and histograms that the code paths bump
//! as things happen (a job accepted, finished, run; a journal flush; an event). One set per
//! process (`primed serve` runs one daemon): they live as long as the process, like the
//! counters of any Prometheus client. What is read at scrape time instead (queues, loads,
//! restarts, alarms, role) is gathered by `http::metrics`, which also names everything.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::job::{Task, Verdict};
use crate::number::Number;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SizeLabel {
    pub size: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

pub struct Metrics {
    pub submitted: Counter,
    pub finished: Family<OutcomeLabel, Counter>,
    pub run_seconds: Family<SizeLabel, Histogram>,
    pub queue_wait_seconds: Family<SizeLabel, Histogram>,
    pub flush_seconds: Histogram,
    pub flush_batch: Histogram,
    pub events: Family<KindLabel, Counter>,
}

/// From 10 µs to about 3 minutes, a bucket per factor of 4.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 4.0, 13))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    submitted: Counter::default(),
    finished: Family::default(),
    run_seconds: Family::new_with_constructor(seconds),
    queue_wait_seconds: Family::new_with_constructor(seconds),
    flush_seconds: seconds(),
    // 1 to about 16k writes per group commit.
    flush_batch: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
    events: Family::default(),
});

pub fn global() -> &'static Metrics {
    &METRICS
}

/// The size class of a job, for the run-time and queue-wait histograms: the cost of a test
/// grows with the cube of the bits, and a make-prime job is many tests.
pub fn size_class(task: &Task) -> &'static str {
    match task {
        Task::Test(Number::Small(_)) => "u64",
        Task::Test(n) if n.bits() <= 512 => "to_512_bits",
        Task::Test(n) if n.bits() <= 4096 => "to_4096_bits",
        Task::Test(_) => "over_4096_bits",
        Task::MakePrime { .. } => "make_prime",
    }
}

/// The outcome label of a verdict.
pub fn outcome(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Prime => "prime",
        Verdict::Composite => "composite",
        Verdict::Made { .. } => "made",
        Verdict::Quarantined { .. } => "quarantined",
        Verdict::Cancelled => "cancelled",
    }
}

impl Metrics {
    pub fn finished(&self, verdict: &Verdict) {
        self.finished
            .get_or_create(&OutcomeLabel {
                outcome: outcome(verdict),
            })
            .inc();
    }

    pub fn ran(&self, size: &'static str, queued: Duration, ran: Duration) {
        let label = SizeLabel { size };
        self.queue_wait_seconds
            .get_or_create(&label)
            .observe(queued.as_secs_f64());
        self.run_seconds
            .get_or_create(&label)
            .observe(ran.as_secs_f64());
    }

    pub fn flushed(&self, took: Duration, writes: u64) {
        self.flush_seconds.observe(took.as_secs_f64());
        self.flush_batch.observe(writes as f64);
    }

    pub fn event(&self, kind: &'static str) {
        self.events.get_or_create(&KindLabel { kind }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_classed_by_their_bits() {
        let class = |bits: u32| {
            let n = num_bigint::BigUint::from(1u8) << (bits - 1);
            size_class(&Task::Test(Number::from(n)))
        };
        assert_eq!(class(64), "u64");
        assert_eq!(class(65), "to_512_bits");
        assert_eq!(class(512), "to_512_bits");
        assert_eq!(class(513), "to_4096_bits");
        assert_eq!(class(4097), "over_4096_bits");
        assert_eq!(size_class(&Task::MakePrime { digits: 5 }), "make_prime");
    }
}
