//! Done-when 5: bad input gets a clear error per item; garbage on the socket closes only that
//! connection; the daemon keeps running and other jobs are unaffected.

use std::io::Write;

use crate::common::raw::{connect, error_frame, handshake, rest};
use crate::common::{describe, mersenne, parse_lines, Daemon};
use primed::protocol;

#[test]
fn invalid_numbers_get_clear_per_item_errors_and_valid_ones_are_answered() {
    let daemon = Daemon::start(1);
    let too_long = "9".repeat(10_001);
    let out = daemon.cli(&["check", "abc", "-5", "1.5", "", &too_long, "97"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "97 is prime\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "\"abc\" is not a decimal integer",
        "\"-5\" is negative",
        "\"1.5\" is not an integer",
        "empty input",
        "10001 digits, over the limit of 10000",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }

    let out = daemon.cli(&["check", "--json", "abc", "97"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = parse_lines(&out.stdout);
    assert_eq!(lines[0]["n"], "abc");
    assert!(lines[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("not a decimal integer")));
    assert_eq!(lines[1]["prime"], true);

    let out = daemon.cli(&["result", "--json", "424242"]);
    assert_eq!(out.status.code(), Some(1));
    let unknown = parse_lines(&out.stdout).remove(0);
    assert_eq!(unknown["id"], 424242);
    assert!(unknown["error"]
        .as_str()
        .is_some_and(|e| e.contains("no job with id 424242")));

    let out = daemon.cli(&["kill", "tester-9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown actor \"tester-9\""));
}

#[test]
fn garbage_on_the_socket_closes_only_that_connection() {
    let daemon = Daemon::start(1);
    let long = mersenne(9689);
    let id = daemon.json(&["submit", &long])[0]["id"]
        .as_u64()
        .expect("id");

    // Not a primed client at all: the daemon answers its hello and hangs up.
    let mut stream = connect(&daemon);
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    assert_eq!(rest(&mut stream), protocol::hello());

    // Another protocol version: same.
    let mut stream = connect(&daemon);
    let mut future = protocol::hello();
    future[7] = 99;
    stream.write_all(&future).expect("write");
    assert_eq!(rest(&mut stream), protocol::hello());

    // A length prefix far over the limit: refused before anything is allocated.
    let mut stream = handshake(&daemon);
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .expect("write");
    let message = error_frame(&rest(&mut stream));
    assert!(
        message.contains("4294967295 bytes exceeds the maximum"),
        "{message}"
    );

    // A frame of garbage bytes.
    let mut stream = handshake(&daemon);
    stream
        .write_all(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0])
        .expect("write");
    let message = error_frame(&rest(&mut stream));
    assert!(message.starts_with("malformed message"), "{message}");

    // A frame cut short by the client going away.
    let mut stream = handshake(&daemon);
    stream.write_all(&[0, 0, 1, 0, 1, 2]).expect("write");
    drop(stream);

    let out = daemon.cli(&["check", "7", "8"]);
    assert!(out.status.success(), "{}", describe(&out));
    let result = daemon
        .json(&["result", "--wait", &id.to_string()])
        .remove(0);
    assert_eq!(result["prime"], true);
    assert_eq!(result["attempts"], 1, "the job in flight was not disturbed");
}

#[test]
fn an_unreachable_daemon_is_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(crate::common::BIN)
        .args(["status", "--socket"])
        .arg(dir.path().join("nobody.sock"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the daemon"));
}
