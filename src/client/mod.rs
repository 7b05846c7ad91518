//! The client side of the CLI: connects to the daemon, runs one command, prints the answers
//! (human or `--json`), and turns the outcome into the documented exit code.

pub mod args;
mod conn;
mod http;
mod output;
mod prime;
mod progress;
mod query;
mod submit;
mod top;
mod web;

use std::time::Duration;

pub use conn::{ClientError, Connection, Endpoint};
pub use http::HttpClient;
pub use prime::{cancel, run as prime};
pub use query::{alarms, area, events, jobs, kill, reload, results, status, tree};
pub use submit::run as submit;
pub use top::run as top;
pub use web::run as web;

use crate::config;
use args::ClientOpts;

/// Exit codes: the contract scripts rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything was answered.
    Ok = 0,
    /// Some input was invalid, or a job or request failed.
    Failed = 1,
    /// The daemon could not be reached, or the command line was wrong.
    Unreachable = 2,
    /// A job asked for finished long ago and was pruned: its answer is no longer kept.
    Pruned = 3,
    /// The daemon refused some jobs for now (busy, disk full): retry later. (EX_TEMPFAIL)
    Retry = 75,
    /// Interrupted by Ctrl-C, after cancelling what it had asked for (128 + SIGINT).
    Interrupted = 130,
}

impl Exit {
    /// The exit code of two outcomes together: a failure outranks a refusal to retry.
    pub fn and(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Ok => 0,
            Exit::Retry => 1,
            Exit::Pruned => 2,
            Exit::Failed => 3,
            Exit::Interrupted => 4,
            Exit::Unreachable => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

fn endpoint(opts: &ClientOpts) -> Endpoint {
    Endpoint {
        socket: opts.socket.clone().unwrap_or_else(config::default_socket),
        timeout: opts
            .timeout
            .map_or(Endpoint::DEFAULT_TIMEOUT, Duration::from_secs_f64),
        daemon_uid: opts.daemon_uid,
    }
}
