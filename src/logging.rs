//! Structured logs: human-readable or one JSON object per line, filtered by RUST_LOG (else
//! `daemon.log_level`, which a reload can change live), on stderr
//! or in a log file rotated daily with a bounded number of old files kept. Writes are
//! synchronous in both cases, so a crash loses no line (the last lines are the crash one wants
//! to read). Panics are logged through the same writer, so a crashing actor leaves one
//! structured line instead of raw text interleaved with the JSON stream.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::io::IsTerminal;
use std::panic::PanicHookInfo;

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing::warn;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// How log lines look: for a person, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Where logs go: stderr, or `file` (its directory and name prefix) keeping `max_files` files.
pub struct LogTarget<'a> {
    pub file: Option<&'a Path>,
    pub max_files: usize,
}

fn writer(target: &LogTarget<'_>) -> anyhow::Result<BoxMakeWriter> {
    let Some(file) = target.file else {
        return Ok(BoxMakeWriter::new(std::io::stderr));
    };
    let name = file
        .file_name()
        .with_context(|| format!("--log-file {} has no file name", file.display()))?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(name.to_string_lossy())
        .max_log_files(target.max_files)
        .build(dir)
        .with_context(|| format!("cannot open log file {}", file.display()))?;
    Ok(BoxMakeWriter::new(Mutex::new(appender)))
}

type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogControl(reload::Handle<EnvFilter, Registry>);

impl LogControl {
    pub fn set(&self, directives: &str) -> anyhow::Result<()> {
        let filter = parse_level(directives)?;
        self.0.reload(filter).context("cannot change the log level")
    }
}

/// A filter from `daemon.log_level`: a level (`debug`) or RUST_LOG-style directives.
pub fn parse_level(directives: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(directives)
        .with_context(|| format!("daemon.log_level {directives:?} is not a log filter"))
}

static STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the installed logger writes to stderr (then an error it logged was seen there).
pub fn logs_to_stderr() -> bool {
    STDERR.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the logger: RUST_LOG if set, else `level`.
pub fn init(format: LogFormat, level: &str, target: &LogTarget<'_>) -> anyhow::Result<LogControl> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => parse_level(level)?,
    };
    let (filter, handle) = reload::Layer::new(filter);
    let on_stderr = target.file.is_none();
    STDERR.store(on_stderr, std::sync::atomic::Ordering::Relaxed);
    // Colour only for a person at a terminal: never into files, pipes or journald.
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(on_stderr && std::io::stderr().is_terminal())
        .with_writer(writer(target)?);
    let layer: Box<dyn Layer<Filtered> + Send + Sync> = match format {
        LogFormat::Pretty => layer.boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    std::panic::set_hook(Box::new(log_panic));
    Ok(LogControl(handle))
}

/// A panic in an actor is a crash its supervisor handles: logged at WARN, with the thread, the
/// place and the message (and a backtrace when RUST_BACKTRACE asks for one).
fn log_panic(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    let location = info
        .location()
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    let backtrace = Backtrace::capture();
    if backtrace.status() == BacktraceStatus::Captured {
        warn!(event = "panic", thread, location, reason = message, backtrace = %backtrace,
              "panicked");
    } else {
        warn!(
            event = "panic",
            thread,
            location,
            reason = message,
            "panicked"
        );
    }
}
