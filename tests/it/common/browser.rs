//! A headless Chromium driven through chromedriver's W3C WebDriver protocol (plain JSON over
//! HTTP, spoken here with a few lines of std), for the observer's tests: open a page, run a
//! script in it, click, type, accept a confirmation, read the console, take a screenshot.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Chromium's flags for this closed network: without the background-networking ones it
/// floods the machine with refused connections.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
];

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// One WebDriver call; the `value` of its answer, or a panic naming the command and its error.
fn call(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    try_call(port, method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// One WebDriver call; the `value` of its answer, or its error object.
fn try_call(port: u16, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("send to chromedriver");
    let payload = read_answer(&mut stream);
    let value: Value = serde_json::from_str(&payload)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {payload}"));
    match value["value"]["error"].is_string() {
        true => Err(value["value"].clone()),
        false => Ok(value["value"].clone()),
    }
}

/// The body of an HTTP answer, by its Content-Length: chromedriver keeps the connection open
/// whatever the request says.
fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        let read = stream
            .read(&mut buffer)
            .expect("read chromedriver's answer");
        assert!(read > 0, "chromedriver closed the connection mid-answer");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                key.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            })
            .expect("a Content-Length");
        if body.len() >= length {
            return body[..length].to_string();
        }
    }
}

/// Waits until chromedriver answers its status (it takes a moment to listen).
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start listening"
        );
        std::thread::yield_now();
    }
}

impl Browser {
    pub fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (cargo xtask test installs Debian's chromium-driver)");
        wait_ready(port);
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "ignore",
        }}});
        let session = call(port, "POST", "/session", Some(capabilities))["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        Browser {
            driver,
            port,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(self.port, method, &path, body)
    }

    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Evaluates `script` until it returns true, or panics after `limit` saying `what`.
    pub fn wait_until(&self, what: &str, limit: Duration, script: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.eval(script) == Value::Bool(true) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; the page says:\n{}",
                self.eval("return document.body.innerText")
            );
        }
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// Clicks the element `css` names, as a user would. A live page may redraw it between
    /// the finding and the click: then it is found again.
    pub fn click(&self, css: &str) {
        for _ in 0..10 {
            let id = self.element(css);
            let path = format!("/session/{}/element/{id}/click", self.session);
            match try_call(self.port, "POST", &path, Some(json!({}))) {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => continue,
                Err(e) => panic!("click {css}: {e}"),
            }
        }
        panic!("click {css}: the element kept being redrawn");
    }

    /// Types `text` into the element `css` names.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Accepts the confirmation the page opened; returns its text.
    pub fn accept_dialog(&self) -> String {
        let text = self.call("GET", "/alert/text", None);
        self.call("POST", "/alert/accept", Some(json!({})));
        text.as_str().unwrap_or_default().to_string()
    }

    /// The console's messages of level SEVERE since the last call.
    pub fn console_errors(&self) -> Vec<String> {
        let entries = self.call("POST", "/se/log", Some(json!({"type": "browser"})));
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Resizes the window (a phone's width, say).
    pub fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call("GET", "/screenshot", None);
        base64(encoded.as_str().expect("base64"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| call(self.port, "DELETE", &path, None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (as WebDriver sends screenshots).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        .collect();
    digits
        .chunks(4)
        .flat_map(|chunk| {
            let n = chunk
                .iter()
                .fold(0u32, |n, &c| n << 6 | u32::from(value(c)))
                << (6 * (4 - chunk.len()));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(chunk.len().saturating_sub(1))
        })
        .collect()
}
