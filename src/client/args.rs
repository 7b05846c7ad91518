//! The client commands' arguments (clap): the socket and how to reach it, and what each
//! command takes. The command line in `cli.rs` gathers them under its subcommands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::area::Shape;
use crate::job::JobId;

#[derive(Debug, Args)]
pub struct ClientOpts {
    /// Socket of the daemon.
    #[arg(long, env = "PRIMED_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// One JSON object per line on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for the daemon to take the connection, and to answer a request that
    /// is not waiting for jobs (default 30).
    #[arg(long, env = "PRIMED_TIMEOUT", global = true, value_name = "SECS",
          value_parser = parse_timeout)]
    pub timeout: Option<f64>,
    /// A uid besides your own and root's that may serve the socket (the client checks the
    /// server's credentials before it sends anything).
    #[arg(long, env = "PRIMED_DAEMON_UID", global = true, value_name = "UID")]
    pub daemon_uid: Option<u32>,
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && Duration::try_from_secs_f64(secs).is_ok() => Ok(secs),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Negative numbers pass through as values, so the daemon can say what is wrong with them.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct InputArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Non-negative decimal integers.
    pub numbers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ResultArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Wait for pending jobs to finish.
    #[arg(long)]
    pub wait: bool,
    #[arg(required = true)]
    pub ids: Vec<u64>,
}

#[derive(Debug, Args)]
pub struct PrimeArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Decimal digits of the prime.
    #[arg(long, value_name = "K")]
    pub digits: u32,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Job id, as `submit` printed it.
    pub id: JobId,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    pub actor: String,
}

#[derive(Debug, Args)]
pub struct AreaArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    #[command(subcommand)]
    pub shape: ShapeArg,
}

/// Sizes may be negative on the command line: the area server is the one to choke on them.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ShapeArg {
    #[command(allow_negative_numbers = true)]
    Rectangle { width: f64, height: f64 },
    #[command(allow_negative_numbers = true)]
    Square { side: f64 },
    #[command(allow_negative_numbers = true)]
    Circle { radius: f64 },
}

impl From<ShapeArg> for Shape {
    fn from(shape: ShapeArg) -> Shape {
        match shape {
            ShapeArg::Rectangle { width, height } => Shape::Rectangle { width, height },
            ShapeArg::Square { side } => Shape::Square { side },
            ShapeArg::Circle { radius } => Shape::Circle { radius },
        }
    }
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Only events newer than this: 90s, 15m, 2h, 7d, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<Duration>,
    /// Then keep printing new events as they happen (Ctrl-C to stop).
    #[arg(long, short, conflicts_with = "data_dir")]
    pub follow: bool,
    /// Read the event log from the data dir of a daemon that is not running (one that
    /// crashed, or will not start) instead of asking a daemon.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `--since`: `90s`, `15m`, `2h`, `7d`, `1h30m` (humantime's units), or a bare number of seconds.
fn parse_since(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?}: {e} (e.g. 90s, 15m, 2h, 7d)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_junk() {
        assert_eq!(parse_since("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_since("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_since("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_since("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "m", "10x", "5m3", "-5m"] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
    }
}
