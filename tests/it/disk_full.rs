//! Disk full: on a small filesystem (a tmpfs the test mounts, so it needs root), submissions
//! are refused with a clear error once free space falls below the reserve, work accepted
//! before still completes, and the daemon takes new work again once space returns.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{describe, occupy_a_tester, parse_lines, write_config, Daemon};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| Mount(path.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let c_path = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: a NUL-terminated path and a writable, zeroed statvfs.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) }, 0);
    stats.f_bavail * stats.f_frsize
}

/// Takes real space (not a sparse file) until `leave` bytes are free.
fn fill(path: &Path, leave: u64) -> PathBuf {
    let filler = path.join("filler");
    let file = File::create(&filler).expect("filler");
    let size = free_bytes(path).saturating_sub(leave);
    // SAFETY: a valid open descriptor and an in-range length.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
    assert_eq!(rc, 0, "fallocate");
    filler
}

#[test]
fn below_the_disk_reserve_submissions_are_refused_and_accepted_work_completes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let Some(_mount) = Mount::tmpfs(&data, "32m") else {
        eprintln!("skipped: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let config = write_config(
        tmp.path(),
        "[limits]\nmin_free_disk_mb = 8\n[journal]\ncache_capacity_mb = 8\n",
    );
    let args = ["--config", config.to_str().expect("utf-8 path")];
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&args)
        .start();
    let long = occupy_a_tester(&daemon);
    let queued = daemon.json(&["submit", "97", "91", "7919"]);

    let filler = fill(&data, 4 << 20);
    let out = daemon.cli(&["check", "104729"]);
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("disk full"), "{stderr}");
    assert!(stderr.contains("min_free_disk_mb"), "{stderr}");

    let mut ids = vec![long.to_string()];
    ids.extend(queued.iter().map(|q| q["id"].to_string()));
    let mut args = vec!["result", "--wait"];
    args.extend(ids.iter().map(String::as_str));
    let answers = daemon.json(&args);
    let primes: Vec<bool> = answers.iter().map(|a| a["prime"] == true).collect();
    assert_eq!(primes, [true, true, false, true], "{answers:?}");

    std::fs::remove_file(filler).expect("free the space");
    let out = daemon.cli(&["check", "--json", "104729"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(parse_lines(&out.stdout)[0]["prime"], true);
}

/// A start on a full disk fails saying so, and leaves the journal as it was: it used to leave
/// an empty `snap.*.generating` that made every later start fail as "damaged".
#[test]
fn a_start_on_a_full_disk_says_disk_full_and_the_next_start_has_every_job() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let Some(_mount) = Mount::tmpfs(&data, "32m") else {
        eprintln!("skipped: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let config = write_config(
        tmp.path(),
        "[limits]\nmin_free_disk_mb = 1\n[journal]\ncache_capacity_mb = 8\n",
    );
    let args = ["--config", config.to_str().expect("utf-8 path")];
    let mut daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&args)
        .start();
    let input: String = (1..=2000).map(|n| format!("{n}\n")).collect();
    let out = daemon.cli_stdin(&["submit"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(daemon.terminate().success());

    let filler = fill(&data, 0);
    let out = Command::new(crate::common::BIN)
        .arg("serve")
        .args(args)
        .arg("--socket")
        .arg(tmp.path().join("primed.sock"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("serve");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("disk full"), "{stderr}");
    assert!(!stderr.contains("damaged"), "{stderr}");
    let leftovers: Vec<String> = std::fs::read_dir(data.join("journal"))
        .expect("journal dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".generating"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    std::fs::remove_file(filler).expect("free the space");
    let again = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&args)
        .start();
    let status = again.status();
    let jobs =
        status["in_flight"].as_u64().unwrap_or(0) + status["completed"].as_u64().unwrap_or(0);
    assert_eq!(jobs, 2000, "{status}");
}
