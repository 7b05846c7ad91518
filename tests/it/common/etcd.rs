//! An etcd cluster for tests: three members on loopback in a temp dir. The etcd tests are
//! compiled only with the `etcd` feature, so the `primed` they run is the one every other test
//! runs; `cargo xtask test` gets what they need (protoc for the build, the etcd server here).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The etcd server must be on PATH: `cargo xtask test` installs it; say so if it is missing.
fn ensure_etcd() {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the etcd tests need the etcd server on PATH: run `cargo xtask test`, which installs \
         Debian's etcd-server as root, or install it yourself"
    );
}

/// The primed the etcd tests run: the one built for this test run, with the etcd feature.
pub fn etcd_primed() -> &'static Path {
    Path::new(super::BIN)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// Three etcd members on loopback, in a temp dir; killed on drop.
pub struct Cluster {
    dir: PathBuf,
    members: Vec<Member>,
}

impl Cluster {
    pub fn start(dir: &Path) -> Cluster {
        ensure_etcd();
        let mut attempt = 0;
        loop {
            let members = (0..3)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client: free_port(),
                    peer: free_port(),
                    child: None,
                })
                .collect();
            let mut cluster = Cluster {
                dir: dir.to_path_buf(),
                members,
            };
            let ready: Vec<_> = (0..3).map(|i| cluster.spawn(i)).collect();
            let up = ready
                .into_iter()
                .all(|ready| ready.recv_timeout(READY_TIMEOUT).is_ok());
            if up {
                return cluster;
            }
            // A member that exits at once lost one of its ports to another test between
            // free_port() and its bind: start over on fresh ports, a few times.
            drop(cluster);
            attempt += 1;
            assert!(attempt < 5, "etcd cluster not ready in {READY_TIMEOUT:?}");
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Starts member `i` (again): etcd ignores the --initial-* flags once its data dir exists.
    pub fn spawn(&mut self, i: usize) -> mpsc::Receiver<()> {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect();
        let member = &self.members[i];
        let client = format!("http://127.0.0.1:{}", member.client);
        let peer = format!("http://127.0.0.1:{}", member.peer);
        let mut child = Command::new("etcd")
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.join(&member.name))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args([
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "primed-test",
            ])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcd");
        let stderr = child.stderr.take().expect("etcd stderr");
        let (tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Logged after the member has published itself through raft (so the cluster
                // has a leader) and opened its client port.
                if line.contains("serving client traffic") {
                    let _ = tx.send(());
                }
            }
        });
        self.members[i].child = Some(child);
        ready
    }

    pub fn wait_ready(&self, i: usize, ready: mpsc::Receiver<()>) {
        ready
            .recv_timeout(READY_TIMEOUT)
            .unwrap_or_else(|_| panic!("etcd member {i} not ready in {READY_TIMEOUT:?}"));
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The client port of member `i`.
    pub fn client_port(&self, i: usize) -> u16 {
        self.members[i].client
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect();
        format!("etcd://{}/primed-test", hosts.join(","))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
