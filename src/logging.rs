//! Structured logs on stderr: human-readable or one JSON object per line, filtered by RUST_LOG.
//! Panics are logged through the same writer, so a crashing actor leaves one structured line
//! instead of raw text interleaved with the JSON stream.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::PanicHookInfo;

use tracing::warn;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // stderr is unbuffered and written synchronously, so a crash loses no log line.
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
