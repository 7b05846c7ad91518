//! The JSON shapes of answers, in one place: the CLI prints them with `--json`, the HTTP API
//! sends them, and its OpenAPI document describes them from these very types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{NodeKind, Report, TreeNode};
use crate::event::Event;
use crate::job::{JobId, Verdict};

/// An answer: `{"id":7,"n":"97","prime":true,"attempts":1}`; for a quarantined or cancelled
/// job `error` instead of `prime`; for a make-prime job `digits`, and `n` is the prime made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReportJson {
    pub id: JobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits: Option<u32>,
    /// The number tested, or the prime made (absent when a make-prime job made none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub n: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prime: Option<bool>,
    /// Only for 0 and 1, which are `"prime": false` but not composite either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub neither_prime_nor_composite: bool,
    /// Why the job has no answer: `cancelled`, or `quarantined: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    /// The job's detail (the HTTP API only): when it was accepted and finished (ms since the
    /// epoch), and how often it crashed its testers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<u32>,
}

/// What a number the tester found not prime is: 0 and 1 are neither prime nor composite.
pub fn not_prime(n: &str) -> &'static str {
    match n {
        "0" | "1" => "neither prime nor composite",
        _ => "composite",
    }
}

impl From<&Report> for ReportJson {
    fn from(report: &Report) -> Self {
        let (prime, error) = match &report.verdict {
            Verdict::Prime => (Some(true), None),
            Verdict::Composite => (Some(false), None),
            Verdict::Quarantined { reason } => (None, Some(format!("quarantined: {reason}"))),
            Verdict::Made { .. } => (None, None),
            Verdict::Cancelled => (None, Some("cancelled".to_string())),
        };
        ReportJson {
            id: report.id,
            digits: report.digits,
            n: report.n.clone(),
            prime,
            neither_prime_nor_composite: prime == Some(false)
                && not_prime(&report.n) != "composite",
            error,
            attempts: report.attempts,
            submitted_ms: None,
            finished_ms: None,
            faults: None,
        }
    }
}

/// One supervision event: `{"at":"2026-…Z","at_ms":…,"event":"restart","actor":"tester-1",…}`;
/// fields that do not apply to its kind are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventJson {
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub at_ms: u64,
    /// daemon_start, daemon_stop, gave_up, crash, restart, backoff, start_failed, escalate,
    /// poison, quarantine, replay, alarm_set or alarm_clear.
    pub event: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `ms` since the epoch as RFC 3339 (UTC, milliseconds).
pub fn timestamp(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

impl From<&Event> for EventJson {
    fn from(event: &Event) -> Self {
        EventJson {
            at: timestamp(event.at_ms),
            at_ms: event.at_ms,
            event: event.kind.name().to_string(),
            actor: event.actor.clone(),
            supervisor: event.supervisor.clone(),
            job: event.job,
            attempt: event.attempt,
            delay_ms: event.delay_ms,
            count: event.count,
            alarm: event.alarm.clone(),
            reason: event.reason.clone(),
        }
    }
}

/// A supervisor's restart intensity: at most `max_restarts` in `period_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IntensityJson {
    pub max_restarts: u32,
    pub period_ms: u64,
}

/// A node of the live supervision tree. A supervisor has `strategy`, `intensity` and
/// `children`; a worker (a tester) its running `job`, `queued` and estimated `load`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TreeJson {
    pub name: String,
    /// `supervisor` or `worker`.
    pub kind: String,
    /// False while it is being restarted.
    pub running: bool,
    pub restarts: u64,
    /// one_for_one, rest_for_one or one_for_all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<IntensityJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub children: Option<Vec<TreeJson>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<u64>,
}

impl From<&TreeNode> for TreeJson {
    fn from(node: &TreeNode) -> Self {
        let mut json = TreeJson {
            name: node.name.clone(),
            kind: "worker".to_string(),
            running: node.running,
            restarts: node.restarts,
            strategy: None,
            intensity: None,
            children: None,
            job: node.job,
            queued: node.queued,
            load: node.load,
        };
        if let NodeKind::Supervisor {
            strategy,
            max_restarts,
            period_ms,
        } = &node.kind
        {
            json.kind = "supervisor".to_string();
            json.strategy = Some(strategy.clone());
            json.intensity = Some(IntensityJson {
                max_restarts: *max_restarts,
                period_ms: *period_ms,
            });
            json.children = Some(node.children.iter().map(TreeJson::from).collect());
        }
        json
    }
}
