//! The command line: clap definitions and dispatch to the daemon or to a client command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::alarms::{AlarmOptions, Thresholds};
use crate::bench::{self, BenchOptions, Mix};
use crate::client::args::{
    AreaArgs, CancelArgs, ClientOpts, EventsArgs, InputArgs, KillArgs, PrimeArgs, ResultArgs,
};
use crate::client::{self, Exit};
use crate::config::{self, Config};
use crate::daemon::{self, ServeOptions};
use crate::faults::Faults;
use crate::journal::{Backend, JournalOptions};
use crate::logging::LogFormat;
use crate::reload::{Settings, SettingsSource};
use crate::server::{self, Limits};
use crate::tree::{TreeOptions, POOL, ROOT, TESTER_SUPERVISOR};

#[derive(Debug, Parser)]
#[command(
    name = "primed",
    version,
    about = "A supervised, journaled primality-testing daemon"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Serve(ServeArgs),
    /// Submit numbers and wait for the answers (numbers from stdin, one per line, if none given).
    Check(InputArgs),
    /// Submit numbers and print their job ids without waiting.
    Submit(InputArgs),
    /// Make a uniformly random prime of exactly K digits (a journaled job; Ctrl-C cancels it).
    Prime(PrimeArgs),
    /// Cancel a job in flight: it is answered "cancelled" and stops running.
    Cancel(CancelArgs),
    /// Print results by job id.
    Result(ResultArgs),
    /// Pool, loads, queues, restarts and counts.
    Status(ClientOpts),
    /// List the jobs in flight.
    Jobs(ClientOpts),
    /// List the active alarms: big jobs running, backlog, restart storm, disk nearly full.
    Alarms(ClientOpts),
    /// Re-read the config file: pool size and log level change live (also on SIGHUP).
    Reload(ClientOpts),
    /// The live supervision tree: supervisors, strategies, children, restarts, jobs and loads.
    Tree(ClientOpts),
    /// Ask the area server (the book's area_server): a negative size crashes it, on purpose.
    Area(AreaArgs),
    /// Kill an actor abruptly, as Erlang's exit(Pid, kill): tester-1 … tester-N, balancer or
    /// area_server.
    Kill(KillArgs),
    /// List stored supervision events: crashes, restarts, backoff, escalations, quarantines.
    Events(EventsArgs),
    /// A live terminal view: testers' queues and loads, throughput, restarts, alarms (q quits).
    Top(ClientOpts),
    /// Print the address of the observer, the live web page (with its token): the daemon
    /// must serve a TCP listener (serve --http-listen 127.0.0.1:PORT).
    Web(ClientOpts),
    /// Load generator: durable jobs/s and latency against a running daemon (or the journal alone).
    Bench(BenchArgs),
    /// Print a shell completion script: `primed completions bash > /etc/bash_completion.d/primed`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line: `primed man | man -l -`.
    Man,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file laid over the embedded defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Unix socket to listen on.
    #[arg(long, env = "PRIMED_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Unix socket of the HTTP/JSON API (default: <socket's name>.http.sock beside the
    /// socket; "" turns it off).
    #[arg(long, value_name = "PATH")]
    pub http_socket: Option<PathBuf>,
    /// Also serve the HTTP API on this TCP address (e.g. 127.0.0.1:8787), every request with
    /// Authorization: Bearer <the token in the data dir's http.token>.
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Journal: sled (in the data dir) or etcd://host:port,…[/prefix].
    #[arg(long, value_name = "URL")]
    pub journal: Option<String>,
    /// Directory of the journal.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Number of prime testers (0: one per core).
    #[arg(long)]
    pub testers: Option<u32>,
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log to this file (rotated daily, daemon.log_max_files kept) instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Most jobs in flight across all clients; beyond it submissions get a "busy" error.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: Option<u64>,
    /// TESTING ONLY: a tester panics when it starts testing N (repeatable).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub panic_on: Vec<String>,
    /// TESTING ONLY: tester-K fails every start after its first (repeatable).
    #[arg(long, value_name = "TESTER")]
    pub fail_restart: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Jobs to submit in all.
    #[arg(long, default_value_t = 200_000)]
    pub jobs: u64,
    /// Client connections, each with its own pipeline.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    #[arg(long, value_enum, default_value = "u64")]
    pub mix: Mix,
    /// Numbers per Submit frame.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Most unanswered jobs per connection (pipelining depth).
    #[arg(long, default_value_t = 4096)]
    pub pipeline: usize,
    /// Seed of the numbers: the same seed submits the same numbers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Drive the journal alone (no actors, no socket, same durability): the ceiling.
    #[arg(long, requires = "data_dir")]
    pub journal_only: bool,
    /// Data dir for --journal-only (a fresh directory; not one a daemon is using).
    #[arg(long, requires = "journal_only")]
    pub data_dir: Option<PathBuf>,
    /// Through the HTTP API (its socket beside --socket) instead of the bincode protocol.
    #[arg(long, conflicts_with = "journal_only")]
    pub http: bool,
    /// The HTTP API's socket, for --http (default: beside --socket, as `serve` puts it).
    #[arg(long, value_name = "PATH", requires = "http")]
    pub http_socket: Option<PathBuf>,
}

/// Grace for blocking computations at exit: their testers are gone, so they are cancelled.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("primed: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Unreachable as u8);
        }
    };
    let code = match cli.command {
        Command::Serve(args) => serve(&runtime, args),
        Command::Bench(args) => bench(&runtime, args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "primed", &mut std::io::stdout());
            Exit::Ok as u8
        }
        Command::Man => man(),
        command => runtime.block_on(run_client(command)) as u8,
    };
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    ExitCode::from(code)
}

/// A client command, to its exit code.
async fn run_client(command: Command) -> Exit {
    let outcome = match command {
        Command::Serve(_) | Command::Bench(_) | Command::Completions { .. } | Command::Man => {
            return Exit::Unreachable
        }
        Command::Check(args) => client::submit(args, true).await,
        Command::Submit(args) => client::submit(args, false).await,
        Command::Result(args) => client::results(args).await,
        Command::Status(opts) => client::status(opts).await,
        Command::Jobs(opts) => client::jobs(opts).await,
        Command::Alarms(opts) => client::alarms(opts).await,
        Command::Tree(opts) => client::tree(opts).await,
        Command::Reload(opts) => client::reload(opts).await,
        Command::Area(args) => client::area(args).await,
        Command::Kill(args) => client::kill(args).await,
        Command::Events(args) => client::events(args).await,
        Command::Top(opts) => client::top(opts).await,
        Command::Web(opts) => client::web(opts).await,
        Command::Prime(args) => client::prime(args).await,
        Command::Cancel(args) => client::cancel(args).await,
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("primed: {e}");
        e.exit()
    })
}

fn serve(runtime: &tokio::runtime::Runtime, args: ServeArgs) -> u8 {
    let result = serve_options(args).and_then(|options| {
        loop {
            match runtime.block_on(daemon::run(options.clone())) {
                // Stepped down: campaign again and wait as the new leader's standby.
                Err(e) if e.is::<daemon::Deposed>() => {
                    tracing::warn!(reason = %e, event = "step_down",
                                   "stepped down; campaigning again as a standby");
                }
                ended => return ended,
            }
        }
    });
    match result {
        Ok(()) => 0,
        // Already logged as the one error line an operator needs.
        Err(e) if e.is::<daemon::GaveUp>() => 1,
        Err(e) => {
            tracing::error!(reason = %format!("{e:#}"), "primed serve failed");
            // Said once: the log line above is already on stderr when the log is.
            if !crate::logging::logs_to_stderr() {
                eprintln!("primed: {e:#}");
            }
            1
        }
    }
}

fn man() -> u8 {
    let command = <Cli as clap::CommandFactory>::command();
    match crate::man::render(command, &mut std::io::stdout()) {
        Ok(()) => Exit::Ok as u8,
        Err(e) => {
            eprintln!("primed: writing the man page: {e}");
            Exit::Failed as u8
        }
    }
}

fn bench(runtime: &tokio::runtime::Runtime, args: BenchArgs) -> u8 {
    let socket = args.opts.socket.unwrap_or_else(config::default_socket);
    let http = args
        .http
        .then(|| config::http_socket(args.http_socket, &socket))
        .flatten();
    let options = BenchOptions {
        socket,
        http,
        json: args.opts.json,
        jobs: args.jobs,
        connections: args.connections,
        mix: args.mix,
        batch: args.batch,
        pipeline: args.pipeline,
        seed: args.seed,
        journal_only: args.data_dir.filter(|_| args.journal_only),
    };
    match runtime.block_on(bench::run(options)) {
        Ok(()) => Exit::Ok as u8,
        Err(e) => {
            eprintln!("primed: bench: {e:#}");
            Exit::Failed as u8
        }
    }
}

fn serve_options(args: ServeArgs) -> anyhow::Result<ServeOptions> {
    let config = Config::load(args.config.as_deref())?;
    let panic_on = [config.faults.panic_on.clone(), args.panic_on].concat();
    let fail_restart = [config.faults.fail_restart.clone(), args.fail_restart].concat();
    let log_file = args.log_file.clone().or(config.daemon.log_file.clone());
    let log = crate::logging::init(
        args.log_format.unwrap_or(config.daemon.log_format),
        &config.daemon.log_level,
        &crate::logging::LogTarget {
            file: log_file.as_deref(),
            max_files: config.daemon.log_max_files,
        },
    )?;
    let testers = config::pool_size(args.testers.unwrap_or(config.pool.testers))?;
    let (file, testers_flag) = (args.config.clone(), args.testers);
    // Flags override the file on a reload too.
    let settings: SettingsSource = Arc::new(move || {
        let config = Config::load(file.as_deref())?;
        Ok(Settings {
            testers: config::pool_size(testers_flag.unwrap_or(config.pool.testers))?,
            retention: config.retention(),
            log_level: config.daemon.log_level,
        })
    });
    let socket = args
        .socket
        .or(config.daemon.socket.clone())
        .unwrap_or_else(config::default_socket);
    let http = crate::http::HttpOptions {
        socket: config::http_socket(
            args.http_socket.or(config.daemon.http_socket.clone()),
            &socket,
        ),
        listen: args
            .http_listen
            .or(config.daemon.http_listen.clone())
            .map(|addr| config::http_listen(&addr))
            .transpose()?,
    };
    Ok(ServeOptions {
        settings,
        log,
        log_level: config.daemon.log_level.clone(),
        socket,
        http,
        data_dir: args
            .data_dir
            .or(config.daemon.data_dir.clone())
            .unwrap_or_else(config::default_data_dir),
        testers,
        socket_group: config.daemon.socket_group.clone(),
        limits: Limits {
            max_in_flight: args.max_in_flight.unwrap_or(config.limits.max_in_flight),
            min_free_bytes: config.limits.min_free_disk_mb.saturating_mul(1 << 20),
            max_digits: config.limits.max_digits,
            max_frame_bytes: config.limits.max_frame_bytes,
            max_outstanding: config.limits.max_outstanding_per_connection,
            // Raised once per process: the soft descriptor limit is usually far below the hard.
            max_connections: server::fit_connections(
                config.limits.max_connections,
                server::raise_nofile_limit(),
            ),
            read_timeout: config::secs(config.limits.read_timeout_secs),
            idle_timeout: config::secs(config.limits.idle_timeout_secs),
        },
        alarms: AlarmOptions {
            big_job_digits: config.alarms.big_job_digits,
            thresholds: Thresholds {
                backlog: config.alarms.backlog,
                restarts_per_minute: config.alarms.restart_storm,
                disk_free_bytes: config.alarms.disk_free_mb.saturating_mul(1 << 20),
            },
            interval: Duration::from_millis(config.alarms.check_interval_ms),
        },
        backend: Backend::parse(args.journal.as_deref().unwrap_or(&config.journal.backend))
            .map_err(anyhow::Error::msg)?,
        lease_ttl: Duration::from_secs(config.journal.lease_ttl_secs),
        compact_every: Duration::from_secs_f64(config.journal.compact_secs),
        journal: JournalOptions {
            cache_bytes: config.journal.cache_capacity_mb.saturating_mul(1 << 20),
            max_events: config.journal.max_events,
        },
        tree: TreeOptions {
            root: config.intensity(ROOT),
            tester_supervisor: config.intensity(TESTER_SUPERVISOR),
            pool: config.intensity(POOL),
            backoff: config.backoff(),
        },
        retention: config.retention(),
        max_attempts: config.supervision.max_attempts,
        faults: Faults::parse(&panic_on, &fail_restart)?,
        grace: config.shutdown_grace(),
    })
}
