//! `GET /metrics`: the instruments of [`crate::metrics`], and what is read at scrape time
//! (jobs in flight and kept, each tester's queue and load, restarts by actor and supervisor,
//! active alarms, the journal role, the build), in the OpenMetrics text format.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::journal::Role;
use crate::metrics::{global, KindLabel};
use crate::protocol::TreeNode;
use crate::server::{admin, Shared};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TesterLabel {
    tester: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabel {
    actor: String,
    supervisor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlarmLabel {
    alarm: String,
    subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

pub async fn render(shared: &Shared) -> String {
    let mut registry = Registry::default();
    instruments(&mut registry);
    jobs(&mut registry, shared);
    testers(&mut registry, shared).await;
    let leads = matches!(shared.coordination.role().await, Role::Leader);
    if leads {
        restarts(&mut registry, shared).await;
    }
    alarms(&mut registry, shared);
    registry.register(
        "primed_journal_leader",
        "1 if this daemon leads its journal (runs the jobs), 0 on an etcd standby",
        gauge(u64::from(leads)),
    );
    let build = Family::<BuildLabel, Gauge>::default();
    build
        .get_or_create(&BuildLabel {
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .set(1);
    registry.register("primed_build_info", "The daemon's version", build);
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

fn instruments(registry: &mut Registry) {
    let m = global();
    registry.register(
        "primed_jobs_submitted",
        "Jobs accepted and durable",
        m.submitted.clone(),
    );
    registry.register(
        "primed_jobs_finished",
        "Jobs answered, by outcome (prime, composite, made, quarantined, cancelled)",
        m.finished.clone(),
    );
    registry.register(
        "primed_job_run_seconds",
        "How long a job's successful attempt ran, by size class",
        m.run_seconds.clone(),
    );
    registry.register(
        "primed_job_queue_wait_seconds",
        "How long a job waited in its tester's queue before it started, by size class",
        m.queue_wait_seconds.clone(),
    );
    registry.register(
        "primed_journal_flush_seconds",
        "How long one group commit (flush and fsync) of the journal took",
        m.flush_seconds.clone(),
    );
    registry.register(
        "primed_journal_flush_writes",
        "Writes made durable by one group commit",
        m.flush_batch.clone(),
    );
    registry.register(
        "primed_events",
        "Supervision events recorded, by kind",
        m.events.clone(),
    );
    let count = |kind| m.events.get_or_create(&KindLabel { kind }).get();
    registry.register(
        "primed_escalations",
        "Supervisors that gave up and escalated to theirs",
        ConstCounter::new(count("escalate")),
    );
    registry.register(
        "primed_quarantines",
        "Poison jobs quarantined",
        ConstCounter::new(count("quarantine")),
    );
}

fn jobs(registry: &mut Registry, shared: &Shared) {
    let jobs = &shared.ctx.jobs;
    let counts = jobs.counts();
    let retained = jobs.retained();
    registry.register(
        "primed_jobs_in_flight",
        "Jobs accepted and not answered",
        gauge(counts.in_flight),
    );
    registry.register(
        "primed_jobs_completed",
        "Jobs answered, as the journal counts them (across restarts)",
        ConstCounter::new(counts.completed),
    );
    registry.register(
        "primed_jobs_kept",
        "Finished jobs whose answers are kept",
        gauge(retained.kept),
    );
    registry.register(
        "primed_jobs_pruned",
        "Finished jobs pruned under the retention policy",
        ConstCounter::new(retained.pruned),
    );
}

async fn testers(registry: &mut Registry, shared: &Shared) {
    let queued = Family::<TesterLabel, Gauge>::default();
    let load = Family::<TesterLabel, Gauge>::default();
    let completed = Family::<TesterLabel, Counter>::default();
    if let crate::protocol::Response::Status(status) = admin::status(shared).await {
        for t in status.testers {
            let label = TesterLabel { tester: t.name };
            queued
                .get_or_create(&label)
                .set(i64::try_from(t.queued).unwrap_or(i64::MAX));
            load.get_or_create(&label)
                .set(i64::try_from(t.load).unwrap_or(i64::MAX));
            completed.get_or_create(&label).inc_by(t.completed);
        }
    }
    registry.register(
        "primed_tester_queued",
        "Jobs placed at a tester and not finished",
        queued,
    );
    registry.register(
        "primed_tester_load",
        "A tester's estimated load (units of one u64 test)",
        load,
    );
    registry.register(
        "primed_tester_completed",
        "Jobs a tester answered first",
        completed,
    );
}

async fn restarts(registry: &mut Registry, shared: &Shared) {
    let restarts = Family::<ActorLabel, Counter>::default();
    if let crate::protocol::Response::Tree(root) = admin::tree(&shared.ctx).await {
        let mut stack: Vec<(&TreeNode, &str)> = vec![(&root, "")];
        while let Some((node, supervisor)) = stack.pop() {
            if !supervisor.is_empty() {
                let label = ActorLabel {
                    actor: node.name.clone(),
                    supervisor: supervisor.to_string(),
                };
                restarts.get_or_create(&label).inc_by(node.restarts);
            }
            stack.extend(
                node.children
                    .iter()
                    .map(|child| (child, node.name.as_str())),
            );
        }
    }
    registry.register(
        "primed_restarts",
        "Restarts of each actor by its supervisor",
        restarts,
    );
}

fn alarms(registry: &mut Registry, shared: &Shared) {
    let active = Family::<AlarmLabel, Gauge>::default();
    let alarms = shared.ctx.alarms.active();
    for alarm in &alarms {
        active
            .get_or_create(&AlarmLabel {
                alarm: alarm.alarm.clone(),
                subject: alarm.subject.clone(),
            })
            .set(1);
    }
    registry.register("primed_alarm_active", "1 for each alarm active now", active);
    registry.register(
        "primed_alarms_active",
        "Alarms active now",
        gauge(alarms.len() as u64),
    );
}
