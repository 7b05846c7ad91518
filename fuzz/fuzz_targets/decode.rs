//! Any bytes through the hello, frame-header and message decoders of both sides: no panic, no
//! abort, and (with `-rss_limit_mb`) no allocation past the codec's bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use primed::protocol::{self, Request, Response, MAX_FRAME_BYTES};

fuzz_target!(|data: &[u8]| {
    let _ = protocol::decode::<Request>(data);
    let _ = protocol::decode::<Response>(data);
    if let Some(header) = data.first_chunk::<4>() {
        let _ = protocol::frame_len(*header, MAX_FRAME_BYTES);
    }
    if let Some(hello) = data.first_chunk::<{ protocol::HELLO_LEN }>() {
        let _ = protocol::check_hello(*hello);
    }
});
