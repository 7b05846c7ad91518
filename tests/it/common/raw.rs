//! A raw client for tests that speak the protocol by hand: hellos, frames, and reading
//! whatever the daemon sends until it closes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use primed::protocol::{self, Response};

use super::Daemon;

pub fn connect(daemon: &Daemon) -> UnixStream {
    let stream = UnixStream::connect(&daemon.socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
}

/// Connects and exchanges hellos, as a well-behaved client does.
pub fn handshake(daemon: &Daemon) -> UnixStream {
    let mut stream = connect(daemon);
    stream.write_all(&protocol::hello()).expect("hello");
    let mut hello = [0; protocol::HELLO_LEN];
    stream.read_exact(&mut hello).expect("server hello");
    protocol::check_hello(hello).expect("same version");
    stream
}

/// Everything the daemon sends until it closes the connection. Closing with our unread bytes
/// still queued makes the kernel report a reset after the data: that is a close too.
pub fn rest(stream: &mut UnixStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!("reading until the daemon closes: {e}"),
        }
    }
}

pub fn error_frame(bytes: &[u8]) -> String {
    let len = protocol::frame_len(bytes[..4].try_into().expect("header"), usize::MAX).expect("len");
    match protocol::decode::<Response>(&bytes[4..4 + len]).expect("response") {
        Response::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}
