//! `cargo xtask`: primed's own tasks (the xtask convention: plain Rust, run through cargo).
//!
//! - `cargo xtask test [ARGS]`: the whole test suite, the etcd tests included, on a machine
//!   that has only the Rust toolchain. protoc comes from the `protoc-bin-vendored` crate and is
//!   handed to the build through `PROTOC`; the etcd server is Debian's `etcd-server`, installed
//!   (after an `apt-get update`) when this runs as root, and otherwise named in a message that
//!   says what to install. Then it runs one `cargo test --features etcd ARGS`, so the
//!   dependency tree is built once and every test runs the same `primed` binary.
//! - `cargo xtask protoc`: prints the protoc to use, for other cargo commands that build the
//!   etcd feature (`PROTOC=$(cargo xtask protoc) cargo clippy --features etcd`).

use std::env;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let outcome = match args.next().as_deref() {
        Some("test") => test(args.collect()),
        Some("protoc") => protoc().map(|path| {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }),
        _ => Err("usage: cargo xtask test [CARGO TEST ARGS] | cargo xtask protoc".into()),
    };
    outcome.unwrap_or_else(|message| {
        eprintln!("xtask: {message}");
        ExitCode::FAILURE
    })
}

/// `PROTOC` if set, else the vendored binary.
fn protoc() -> Result<PathBuf, String> {
    if let Some(path) = env::var_os("PROTOC").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    protoc_bin_vendored::protoc_bin_path()
        .map_err(|e| format!("protoc-bin-vendored has no protoc for this platform: {e}"))
}

fn test(args: Vec<String>) -> Result<ExitCode, String> {
    let protoc = protoc()?;
    ensure_etcd()?;
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--features", "etcd"])
        .args(args)
        .env("PROTOC", protoc)
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The etcd server on PATH: there already, or Debian's package when we may install it.
fn ensure_etcd() -> Result<(), String> {
    if runs("etcd", &["--version"]) {
        return Ok(());
    }
    let advice = "the etcd tests need the etcd server on PATH: install Debian's etcd-server \
                  (sudo apt-get update && sudo apt-get install etcd-server) or an etcd release, \
                  then run cargo xtask test again; plain `cargo test` runs everything else";
    if !is_root() || !runs("apt-get", &["--version"]) {
        return Err(advice.into());
    }
    eprintln!("xtask: installing Debian's etcd-server for the etcd tests");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = apt(&["update", "-q"]) && apt(&["install", "-y", "-q", "etcd-server"]);
    if installed && runs("etcd", &["--version"]) {
        Ok(())
    } else {
        Err(format!("installing etcd-server failed; {advice}"))
    }
}
