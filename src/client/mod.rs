//! The client side of the CLI: connects to the daemon, runs one command, prints the answers
//! (human or `--json`), and turns the outcome into the documented exit code.

mod conn;
mod output;
mod prime;
mod progress;
mod query;
mod submit;
mod top;

use std::time::Duration;

pub use conn::{ClientError, Connection, Endpoint};

use crate::cli::{ClientOpts, Command};
use crate::config;

/// Exit codes: the contract scripts rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything was answered.
    Ok = 0,
    /// Some input was invalid, or a job or request failed.
    Failed = 1,
    /// The daemon could not be reached, or the command line was wrong.
    Unreachable = 2,
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
            Exit::Failed => 2,
            Exit::Interrupted => 3,
            Exit::Unreachable => 4,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

pub async fn run(command: Command) -> Exit {
    let outcome = match command {
        Command::Serve(_) | Command::Bench(_) | Command::Completions { .. } | Command::Man => {
            return Exit::Unreachable
        }
        Command::Check(args) => submit::run(args, true).await,
        Command::Submit(args) => submit::run(args, false).await,
        Command::Result(args) => query::results(args).await,
        Command::Status(opts) => query::status(opts).await,
        Command::Jobs(opts) => query::jobs(opts).await,
        Command::Alarms(opts) => query::alarms(opts).await,
        Command::Tree(opts) => query::tree(opts).await,
        Command::Reload(opts) => query::reload(opts).await,
        Command::Area(args) => query::area(args).await,
        Command::Kill(args) => query::kill(args).await,
        Command::Events(args) => query::events(args).await,
        Command::Top(opts) => top::run(opts).await,
        Command::Prime(args) => prime::run(args).await,
        Command::Cancel(args) => prime::cancel(args).await,
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("primed: {e}");
        e.exit()
    })
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
