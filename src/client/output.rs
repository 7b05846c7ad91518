//! Printing answers: one JSON object per line with `--json`, short sentences otherwise.
//! Errors about individual inputs go to stderr in human mode, to stdout as objects in JSON mode.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::json;

use crate::alarms::Alarm;
use crate::area::Shape;
use crate::event::Event;
use crate::job::{JobId, Verdict};
use crate::protocol::json::{not_prime, timestamp, EventJson, ReportJson, TreeJson};
use crate::protocol::{DaemonRole, JobInfo, NodeKind, Report, StatusReport, TreeNode};

/// One line per node, indented under its supervisor as `tree(1)` draws directories.
fn tree_lines(root: &TreeNode) -> Vec<String> {
    let mut lines = Vec::new();
    let mut stack: Vec<(&TreeNode, String, String)> = vec![(root, String::new(), String::new())];
    while let Some((node, lead, indent)) = stack.pop() {
        lines.push(format!("{lead}{}", describe_node(node)));
        let last = node.children.len().saturating_sub(1);
        for (i, child) in node.children.iter().enumerate().rev() {
            let (branch, next) = if i == last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            stack.push((
                child,
                format!("{indent}{branch}"),
                format!("{indent}{next}"),
            ));
        }
    }
    lines
}

fn describe_node(node: &TreeNode) -> String {
    let state = if node.running {
        "running"
    } else {
        "restarting"
    };
    let mut text = match &node.kind {
        NodeKind::Supervisor {
            strategy,
            max_restarts,
            period_ms,
        } => format!(
            "{} ({strategy}, at most {max_restarts} restarts in {}s) {state}",
            node.name,
            *period_ms as f64 / 1000.0
        ),
        NodeKind::Worker => format!("{} {state}", node.name),
    };
    text.push_str(&format!(" restarts={}", node.restarts));
    for (key, field) in [
        ("job", node.job),
        ("queued", node.queued),
        ("load", node.load),
    ] {
        if let Some(v) = field {
            text.push_str(&format!(" {key}={v}"));
        }
    }
    text
}

/// What a job was about, for messages: its number, or the prime it was to make.
fn task(report: &Report) -> String {
    match report.digits {
        Some(digits) => format!("a {digits}-digit prime"),
        None => report.n.clone(),
    }
}

pub struct Printer<W: Write> {
    out: W,
    json: bool,
}

impl Printer<io::BufWriter<io::Stdout>> {
    pub fn stdout(json: bool) -> Self {
        Printer {
            out: io::BufWriter::new(io::stdout()),
            json,
        }
    }
}

impl<W: Write> Printer<W> {
    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        writeln!(self.out)
    }

    fn report_json(&mut self, report: &Report) -> io::Result<()> {
        self.line(&ReportJson::from(report))
    }

    /// A job that has no answer (quarantined, cancelled): said on stderr.
    fn unanswered(&mut self, report: &Report, why: &str) -> io::Result<()> {
        self.out.flush()?;
        eprintln!(
            "primed: error: job {}: {} was {why} (attempts: {})",
            report.id,
            task(report),
            report.attempts
        );
        Ok(())
    }

    /// A `check` or `prime` answer.
    pub fn report(&mut self, report: &Report) -> io::Result<()> {
        match &report.verdict {
            _ if self.json => self.report_json(report),
            Verdict::Quarantined { reason } => {
                self.unanswered(report, &format!("quarantined: {reason}"))
            }
            Verdict::Cancelled => self.unanswered(report, "cancelled"),
            Verdict::Prime => writeln!(self.out, "{} is prime", report.n),
            Verdict::Composite => writeln!(self.out, "{} is {}", report.n, not_prime(&report.n)),
            Verdict::Made { prime } => writeln!(self.out, "{prime}"),
        }
    }

    /// A `result` answer.
    pub fn result(&mut self, report: &Report) -> io::Result<()> {
        let verdict = match &report.verdict {
            _ if self.json => return self.report_json(report),
            Verdict::Quarantined { reason } => {
                return self.unanswered(report, &format!("quarantined: {reason}"))
            }
            Verdict::Cancelled => return self.unanswered(report, "cancelled"),
            Verdict::Prime => "prime",
            Verdict::Composite => not_prime(&report.n),
            Verdict::Made { prime } => {
                let digits = report.digits.unwrap_or(0);
                return writeln!(
                    self.out,
                    "job {}: made the {digits}-digit prime {prime} (attempts: {})",
                    report.id, report.attempts
                );
            }
        };
        writeln!(
            self.out,
            "job {}: {} is {verdict} (attempts: {})",
            report.id, report.n, report.attempts
        )
    }

    /// A job cancelled on request (`primed cancel`, or Ctrl-C during `primed prime`).
    pub fn cancelled(&mut self, id: JobId) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "id": id, "cancelled": true }));
        }
        writeln!(self.out, "job {id}: cancelled")
    }

    pub fn invalid(&mut self, input: &str, error: &str) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "n": input, "error": error }));
        }
        self.out.flush()?;
        eprintln!("primed: error: {error}");
        Ok(())
    }

    pub fn submitted(&mut self, id: JobId, n: &str) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "id": id, "n": n }));
        }
        writeln!(self.out, "{id} {n}")
    }

    pub fn pending(&mut self, id: JobId) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "id": id, "status": "pending" }));
        }
        writeln!(self.out, "job {id}: pending")
    }

    /// A job whose answer was pruned: said on stdout, as an answer about the job.
    pub fn pruned(&mut self, id: JobId, reason: &str) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "id": id, "pruned": true, "reason": reason }));
        }
        writeln!(
            self.out,
            "job {id} finished and was pruned: its answer is no longer kept ({reason})"
        )
    }

    pub fn unknown(&mut self, id: JobId, error: &str) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "id": id, "error": error }));
        }
        self.out.flush()?;
        eprintln!("primed: error: job {id}: {error}");
        Ok(())
    }

    /// Before the first in-flight job (human output only).
    pub fn jobs_header(&mut self) -> io::Result<()> {
        match self.json {
            true => Ok(()),
            false => writeln!(self.out, "id number tester attempts"),
        }
    }

    /// `jobs` found nothing in flight: said, rather than printing nothing.
    pub fn no_jobs(&mut self) -> io::Result<()> {
        match self.json {
            true => Ok(()),
            false => writeln!(self.out, "no jobs in flight"),
        }
    }

    pub fn job(&mut self, job: &JobInfo) -> io::Result<()> {
        if self.json {
            return self.line(job);
        }
        let tester = job.tester.as_deref().unwrap_or("unassigned");
        writeln!(
            self.out,
            "{} {} {tester} attempts={}",
            job.id, job.n, job.attempts
        )
    }

    pub fn status(&mut self, status: &StatusReport) -> io::Result<()> {
        if self.json {
            return self.line(status);
        }
        let balancer = match (status.role, status.balancer.available) {
            (DaemonRole::Standby, _) => "none here",
            (DaemonRole::Leader, true) => "up",
            (DaemonRole::Leader, false) => "restarting",
        };
        if status.role == DaemonRole::Standby {
            let leader = status.leader.as_deref().unwrap_or("unknown");
            writeln!(
                self.out,
                "standby: the leading daemon runs the jobs ({leader})"
            )?;
        }
        writeln!(
            self.out,
            "in flight: {}  completed: {}  balancer: {balancer}, {} restarts",
            status.in_flight, status.completed, status.balancer.restarts
        )?;
        writeln!(
            self.out,
            "restarts: {} since start, {} in the last minute",
            status.restarts, status.restarts_last_minute
        )?;
        let retention = &status.retention;
        let oldest = retention.oldest_kept_ms.map_or_else(
            || "none".to_string(),
            |ms| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
                )
                .to_string()
            },
        );
        writeln!(
            self.out,
            "finished jobs: {} kept (oldest finished {oldest}), {} pruned",
            retention.kept, retention.pruned
        )?;
        writeln!(
            self.out,
            "{:<12} {:>8} {:>14} {:>9} {:>10}",
            "tester", "queued", "load", "restarts", "completed"
        )?;
        for t in &status.testers {
            writeln!(
                self.out,
                "{:<12} {:>8} {:>14} {:>9} {:>10}",
                t.name, t.queued, t.load, t.restarts, t.completed
            )?;
        }
        Ok(())
    }

    /// `{"at":"2026-…Z","at_ms":…,"event":"restart","actor":"tester-1",…}`: absent fields omitted.
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        let view = EventJson::from(event);
        if self.json {
            return self.line(&view);
        }
        write!(self.out, "{} {:<12} {}", view.at, view.event, view.actor)?;
        if let Some(supervisor) = view.supervisor {
            write!(self.out, " supervisor={supervisor}")?;
        }
        if let Some(alarm) = view.alarm {
            write!(self.out, " alarm={alarm}")?;
        }
        let numbers = [
            ("job", view.job),
            ("attempt", view.attempt.map(u64::from)),
            ("delay_ms", view.delay_ms),
            ("count", view.count),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                write!(self.out, " {name}={value}")?;
            }
        }
        if let Some(reason) = view.reason {
            write!(self.out, " reason={reason:?}")?;
        }
        writeln!(self.out)
    }

    /// One line per alarm; "no alarms" (human mode) when there is none.
    pub fn alarms(&mut self, alarms: &[Alarm]) -> io::Result<()> {
        if alarms.is_empty() && !self.json {
            return writeln!(self.out, "no alarms");
        }
        for alarm in alarms {
            if self.json {
                self.line(alarm)?;
            } else {
                writeln!(
                    self.out,
                    "{:<16} {:<10} since {}  {}",
                    alarm.alarm,
                    alarm.subject,
                    timestamp(alarm.since_ms),
                    alarm.detail
                )?;
            }
        }
        Ok(())
    }

    /// The tree, drawn with box characters, or one JSON object (children nested).
    pub fn tree(&mut self, root: &TreeNode) -> io::Result<()> {
        if self.json {
            return self.line(&TreeJson::from(root));
        }
        for line in tree_lines(root) {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    pub fn area(&mut self, shape: &Shape, area: f64) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "shape": shape.name(), "area": area }));
        }
        writeln!(self.out, "{area}")
    }

    pub fn reloaded(&mut self, changes: &str) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "reloaded": changes }));
        }
        writeln!(self.out, "reloaded: {changes}")
    }

    pub fn killed(&mut self, actor: &str) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "killed": actor }));
        }
        writeln!(self.out, "killed {actor}")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `2026-11-25T10:04:05.123Z` for milliseconds since the Unix epoch (UTC).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(timestamp(1_795_601_045_123), "2026-11-25T10:04:05.123Z");
    }

    fn printed(json: bool, f: impl FnOnce(&mut Printer<Vec<u8>>) -> io::Result<()>) -> String {
        let mut printer = Printer {
            out: Vec::new(),
            json,
        };
        f(&mut printer).unwrap();
        String::from_utf8(printer.out).unwrap()
    }

    #[test]
    fn json_shapes_match_the_contract() {
        let report = Report {
            id: 7,
            n: "97".into(),
            digits: None,
            verdict: Verdict::Prime,
            attempts: 1,
        };
        assert_eq!(
            printed(true, |p| p.report(&report)),
            "{\"id\":7,\"n\":\"97\",\"prime\":true,\"attempts\":1}\n"
        );
        let poison = Report {
            verdict: Verdict::Quarantined {
                reason: "boom".into(),
            },
            attempts: 3,
            ..report
        };
        assert_eq!(
            printed(true, |p| p.result(&poison)),
            "{\"id\":7,\"n\":\"97\",\"error\":\"quarantined: boom\",\"attempts\":3}\n"
        );
        let made = Report {
            id: 8,
            n: "557".into(),
            digits: Some(3),
            verdict: Verdict::Made {
                prime: "557".into(),
            },
            attempts: 1,
        };
        assert_eq!(
            printed(true, |p| p.report(&made)),
            "{\"id\":8,\"digits\":3,\"n\":\"557\",\"attempts\":1}\n"
        );
        assert_eq!(printed(false, |p| p.report(&made)), "557\n");
        let cancelled = Report {
            n: String::new(),
            verdict: Verdict::Cancelled,
            ..made
        };
        assert_eq!(
            printed(true, |p| p.result(&cancelled)),
            "{\"id\":8,\"digits\":3,\"error\":\"cancelled\",\"attempts\":1}\n"
        );
        assert_eq!(
            printed(true, |p| p.pending(7)),
            "{\"id\":7,\"status\":\"pending\"}\n"
        );
        assert_eq!(
            printed(true, |p| p.submitted(7, "97")),
            "{\"id\":7,\"n\":\"97\"}\n"
        );
        let job = JobInfo {
            id: 7,
            n: "97".into(),
            tester: None,
            attempts: 0,
        };
        assert_eq!(
            printed(true, |p| p.job(&job)),
            "{\"id\":7,\"n\":\"97\",\"tester\":null,\"attempts\":0}\n"
        );
    }

    #[test]
    fn human_verdicts() {
        let report = Report {
            id: 1,
            n: "91".into(),
            digits: None,
            verdict: Verdict::Composite,
            attempts: 1,
        };
        assert_eq!(printed(false, |p| p.report(&report)), "91 is composite\n");
        for n in ["0", "1"] {
            let unit = Report {
                n: n.into(),
                ..report.clone()
            };
            let human = printed(false, |p| p.report(&unit));
            assert_eq!(human, format!("{n} is neither prime nor composite\n"));
            let json = printed(true, |p| p.report(&unit));
            assert!(
                json.contains("\"prime\":false,\"neither_prime_nor_composite\":true"),
                "{json}"
            );
        }
    }
}
