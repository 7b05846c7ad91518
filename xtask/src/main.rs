//! `cargo xtask`: primed's own tasks (the xtask convention: plain Rust, run through cargo).
//!
//! - `cargo xtask test [ARGS]`: the whole test suite, the etcd tests included, on a machine
//!   that has only the Rust toolchain. protoc comes from the `protoc-bin-vendored` crate and is
//!   handed to the build through `PROTOC`. The etcd server, curl, python3 and Chromium come
//!   from Debian's `etcd-server`, `curl`, `python3`, `python3-venv`, `chromium` and
//!   `chromium-driver`, installed (after an `apt-get update`) when missing and this runs as
//!   root, and otherwise named in a message that says what to install. schemathesis (for the
//!   HTTP API's schema test) is installed from PyPI into a virtualenv under target/ and named
//!   to the tests in `PRIMED_SCHEMATHESIS`. Then it runs one `cargo test --features etcd ARGS`,
//!   so the dependency tree is built once and every test runs the same `primed` binary.
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
    let schemathesis = ensure_schemathesis()?;
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--features", "etcd"])
        .args(args)
        .env("PROTOC", protoc)
        .env("PRIMED_SCHEMATHESIS", schemathesis)
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The schemathesis release the API's schema test runs (from PyPI).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// schemathesis in a virtualenv of its own under target/ (made once, then reused): what the
/// HTTP API's schema test runs against the daemon.
fn ensure_schemathesis() -> Result<PathBuf, String> {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let venv = target.join("tools/schemathesis");
    let st = venv.join("bin/schemathesis");
    let marker = venv.join(SCHEMATHESIS);
    if marker.exists() && runs(&st.to_string_lossy(), &["--version"]) {
        return Ok(st);
    }
    eprintln!(
        "xtask: installing {SCHEMATHESIS} from PyPI into {}",
        venv.display()
    );
    let made = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    let pip = venv.join("bin/pip");
    let installed = made
        && Command::new(&pip)
            .args(["install", "-q", "--disable-pip-version-check", SCHEMATHESIS])
            .status()
            .is_ok_and(|s| s.success());
    if !installed || !runs(&st.to_string_lossy(), &["--version"]) {
        return Err(format!(
            "cannot install {SCHEMATHESIS} into {} (python3 -m venv and pip, from PyPI): the \
             HTTP API's schema test needs it",
            venv.display()
        ));
    }
    std::fs::write(&marker, "").map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    Ok(st)
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
/// a user would), python3 (the Python client's tests) and Chromium with its chromedriver (the
/// observer's tests). On PATH already, or Debian's packages when we may install them.
fn ensure_tools() -> Result<(), String> {
    // What to run to see a tool works, and Debian's package with it.
    let tools: [(&str, &[&str], &str); 6] = [
        ("etcd", &["--version"], "etcd-server"),
        ("curl", &["--version"], "curl"),
        ("python3", &["--version"], "python3"),
        ("python3", &["-c", "import ensurepip, venv"], "python3-venv"),
        ("chromium", &["--version"], "chromium"),
        ("chromedriver", &["--version"], "chromium-driver"),
    ];
    let missing: Vec<(&str, &str)> = tools
        .into_iter()
        .filter(|(program, args, _)| !runs(program, args))
        .map(|(program, _, package)| (program, package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    let advice = format!(
        "the tests need Debian's {}: sudo apt-get update && sudo apt-get install {}, then \
         cargo xtask test again",
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
    if installed && tools.iter().all(|(program, args, _)| runs(program, args)) {
        Ok(())
    } else {
        Err(format!("installing failed; {advice}"))
    }
}
