//! Structured logs: human-readable or one JSON object per line, filtered by RUST_LOG, on stderr
//! or in a log file rotated daily with a bounded number of old files kept. Writes are
//! synchronous in both cases, so a crash loses no line (the last lines are the crash one wants
//! to read). Panics are logged through the same writer, so a crashing actor leaves one
//! structured line instead of raw text interleaved with the JSON stream.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::PanicHookInfo;

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing::warn;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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

pub fn init(format: LogFormat, target: &LogTarget<'_>) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(target.file.is_none())
        .with_writer(writer(target)?);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    std::panic::set_hook(Box::new(log_panic));
    Ok(())
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
