//! Talking to the daemon's HTTP API: through curl (as a user would, and as README shows) and
//! through a raw Unix stream (for requests no well-behaved client sends).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::Daemon;

/// An HTTP answer: status, headers (lowercased names) and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} (status {})", self.body, self.status))
    }

    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {:?}", self.body))
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

impl Daemon {
    pub fn http_socket(&self) -> PathBuf {
        self.dir.join("primed.http.sock")
    }

    /// `curl --unix-socket <api socket> -X METHOD [-H …] [--data-binary BODY] http://primed/PATH`.
    pub fn curl(&self, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> Reply {
        let socket = self.http_socket();
        let args = ["--unix-socket", socket.to_str().expect("utf-8 path")];
        curl(
            &args,
            method,
            &format!("http://primed{path}"),
            body,
            headers,
        )
    }
}

/// Runs curl with `args` then the request; the reply parsed from `-i` output.
pub fn curl(
    leading: &[&str],
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[&str],
) -> Reply {
    let mut args: Vec<&str> = leading.to_vec();
    args.extend(["-sS", "-i", "-X", method, "--max-time", "60"]);
    for header in headers {
        args.extend(["-H", header]);
    }
    if body.is_some() {
        args.extend(["--data-binary", "@-"]);
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type"))
        {
            args.extend(["-H", "content-type: application/json"]);
        }
    }
    args.push(url);
    let mut child = Command::new("curl")
        .args(args.iter())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl (the HTTP tests need it; cargo xtask test installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = body.unwrap_or("").as_bytes().to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("curl output");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// A response as `curl -i` prints it (the last one, after any `100 Continue`).
pub fn parse(text: &str) -> Reply {
    let mut rest = text;
    loop {
        let (head, body) = rest
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {status_line:?}"));
        if status == 100 {
            rest = body;
            continue;
        }
        return Reply {
            status,
            headers: headers.to_string(),
            body: body.to_string(),
        };
    }
}

/// Sends `request` as is on a fresh connection to the API's socket and reads to the end (the
/// request should say `connection: close`).
pub fn raw(daemon: &Daemon, request: &[u8]) -> Reply {
    let mut stream = UnixStream::connect(daemon.http_socket()).expect("connect to the API");
    stream.write_all(request).expect("write the request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the answer");
    parse(&text)
}
