//! `cargo xtask`: primed's own tasks (the xtask convention: plain Rust, run through cargo).
//!
//! - `cargo xtask test [ARGS]`: the whole test suite, the etcd tests included, on a machine
//!   that has only the Rust toolchain. protoc comes from the `protoc-bin-vendored` crate and is
//!   handed to the build through `PROTOC`; the etcd server, curl and python3 are Debian's
//!   `etcd-server`, `curl` and `python3`, installed (after an `apt-get update`) when this runs as root and they are
//!   missing, and otherwise named in a message that says what to install. Then it runs one `cargo test --features etcd ARGS`, so the
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
    ensure_tools()?;
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

/// What the tests run besides primed: the etcd server, curl (the HTTP API's tests drive it as
/// a user would) and python3 (the Python client's tests). On PATH already, or Debian's packages when we may install them.
fn ensure_tools() -> Result<(), String> {
    let missing: Vec<(&str, &str)> = [
        ("etcd", "etcd-server"),
        ("curl", "curl"),
        ("python3", "python3"),
    ]
    .into_iter()
    .filter(|(program, _)| !runs(program, &["--version"]))
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    let advice = format!(
        "the tests need {} on PATH: install Debian's {} (sudo apt-get update && sudo apt-get \
         install {}), then run cargo xtask test again",
        missing
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(" and "),
        packages.join(" and "),
        packages.join(" ")
    );
    if !is_root() || !runs("apt-get", &["--version"]) {
        return Err(advice);
    }
    eprintln!(
        "xtask: installing Debian's {} for the tests",
        packages.join(" and ")
    );
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let install: Vec<&str> = ["install", "-y", "-q"]
        .into_iter()
        .chain(packages)
        .collect();
    let installed = apt(&["update", "-q"]) && apt(&install);
    if installed
        && missing
            .iter()
            .all(|(program, _)| runs(program, &["--version"]))
    {
        Ok(())
    } else {
        Err(format!("installing failed; {advice}"))
    }
}
