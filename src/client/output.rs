//! Printing answers: one JSON object per line with `--json`, short sentences otherwise.
//! Errors about individual inputs go to stderr in human mode, to stdout as objects in JSON mode.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::json;

use crate::job::JobId;
use crate::protocol::{JobInfo, Report, StatusReport};

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

    pub fn report(&mut self, report: &Report) -> io::Result<()> {
        if self.json {
            return self.line(report);
        }
        let verdict = if report.prime { "prime" } else { "composite" };
        writeln!(self.out, "{} is {verdict}", report.n)
    }

    pub fn result(&mut self, report: &Report) -> io::Result<()> {
        if self.json {
            return self.line(report);
        }
        let verdict = if report.prime { "prime" } else { "composite" };
        writeln!(
            self.out,
            "job {}: {} is {verdict} (attempts: {})",
            report.id, report.n, report.attempts
        )
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

    pub fn unknown(&mut self, id: JobId, error: &str) -> io::Result<()> {
        if self.json {
            return self.line(&json!({ "id": id, "error": error }));
        }
        self.out.flush()?;
        eprintln!("primed: error: job {id}: {error}");
        Ok(())
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
        let balancer = if status.balancer.available {
            "up"
        } else {
            "restarting"
        };
        writeln!(
            self.out,
            "in flight: {}  completed: {}  balancer: {balancer}, {} restarts",
            status.in_flight, status.completed, status.balancer.restarts
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

#[cfg(test)]
mod tests {
    use super::*;

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
            prime: true,
            attempts: 1,
        };
        assert_eq!(
            printed(true, |p| p.report(&report)),
            "{\"id\":7,\"n\":\"97\",\"prime\":true,\"attempts\":1}\n"
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
            prime: false,
            attempts: 1,
        };
        assert_eq!(printed(false, |p| p.report(&report)), "91 is composite\n");
    }
}
