//! The wire protocol between the `primed` CLI and the daemon: an 8-byte hello that carries the
//! protocol version, then length-prefixed frames holding bincode-encoded messages.

mod frame;
pub mod json;
mod message;

pub use frame::{
    check_hello, decode, encode_frame, frame_len, hello, read_first_byte, read_frame,
    read_frame_rest, write_frame, FrameError, HELLO_LEN, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
pub use message::{
    Accepted, BalancerStatus, DaemonRole, JobInfo, NodeKind, Report, Request, Response,
    RetentionStatus, StatusReport, TesterStatus, TreeNode, MAX_BATCH,
};
