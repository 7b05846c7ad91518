//! Framing: the hello exchange and length-prefixed frames (4-byte big-endian length, then a
//! bincode payload). Pure encoding functions, plus thin async read/write helpers over them.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec;

/// Bumped whenever a message changes shape; both sides refuse a peer of another version.
pub const PROTOCOL_VERSION: u16 = 5;
/// Default hard limit on one frame's payload.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
pub const HELLO_LEN: usize = 8;
const MAGIC: &[u8; 6] = b"PRIMED";

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer is not a primed client or daemon (bad hello bytes {0:02x?})")]
    BadHello([u8; HELLO_LEN]),
    #[error("protocol version mismatch: this side speaks v{ours}, the peer v{theirs}; use matching primed binaries")]
    Version { ours: u16, theirs: u16 },
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(
        "the peer stalled: it sent part of a hello or a frame and no more within \
         limits.read_timeout_secs, or read no answer within limits.idle_timeout_secs"
    )]
    Timeout,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

pub fn hello() -> [u8; HELLO_LEN] {
    let mut bytes = [0; HELLO_LEN];
    bytes[..6].copy_from_slice(MAGIC);
    bytes[6..].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    bytes
}

/// Accepts only a hello of our own protocol version.
pub fn check_hello(bytes: [u8; HELLO_LEN]) -> Result<(), FrameError> {
    if &bytes[..6] != MAGIC {
        return Err(FrameError::BadHello(bytes));
    }
    let theirs = u16::from_be_bytes([bytes[6], bytes[7]]);
    if theirs != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    Ok(())
}

pub fn encode_frame<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0; 4];
    codec::encode_into(message, &mut frame).map_err(|e| FrameError::Malformed(e.0))?;
    let len = frame.len() - 4;
    let header = u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .ok_or(FrameError::TooLarge { len, max })?;
    frame[..4].copy_from_slice(&header.to_be_bytes());
    Ok(frame)
}

/// Validates a frame header before anything is allocated for the payload.
pub fn frame_len(header: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a whole payload, within the codec's limits; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    codec::decode(payload).map_err(|e| FrameError::Malformed(e.0))
}

/// Reads one frame's payload; `None` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    match read_first_byte(reader).await? {
        None => Ok(None),
        Some(first) => read_frame_rest(first, reader, max).await.map(Some),
    }
}

/// The first byte of the next frame, `None` at a clean end of stream. Cancel-safe (nothing is
/// lost if it is abandoned), so a caller may wait for it against an idle timer.
pub async fn read_first_byte<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<u8>, FrameError> {
    let mut first = [0; 1];
    match reader.read(&mut first).await? {
        0 => Ok(None),
        _ => Ok(Some(first[0])),
    }
}

/// The rest of a frame whose first byte was `first`; nothing is allocated for the payload
/// before its length is checked against `max`.
pub async fn read_frame_rest<R: AsyncRead + Unpin>(
    first: u8,
    reader: &mut R,
    max: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [first, 0, 0, 0];
    read_exact(reader, &mut header[1..]).await?;
    let mut payload = vec![0; frame_len(header, max)?];
    read_exact(reader, &mut payload).await?;
    Ok(payload)
}

async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> Result<(), FrameError> {
    reader
        .read_exact(buf)
        .await
        .map(drop)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })
}

pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
    max: usize,
) -> Result<(), FrameError> {
    writer.write_all(&encode_frame(message, max)?).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Request, Response};

    #[test]
    fn hello_round_trip_and_rejections() {
        assert!(check_hello(hello()).is_ok());
        let mut other = hello();
        other[7] = other[7].wrapping_add(1);
        assert!(matches!(
            check_hello(other),
            Err(FrameError::Version { .. })
        ));
        assert!(matches!(
            check_hello(*b"GET / HT"),
            Err(FrameError::BadHello(_))
        ));
    }

    #[test]
    fn frames_round_trip() {
        let request = Request::Submit {
            numbers: vec!["97".into(), "abc".into()],
            wait: true,
        };
        let frame = encode_frame(&request, MAX_FRAME_BYTES).unwrap();
        let len = frame_len(frame[..4].try_into().unwrap(), MAX_FRAME_BYTES).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode::<Request>(&frame[4..]).unwrap(), request);
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        assert!(matches!(
            frame_len([0xff; 4], MAX_FRAME_BYTES),
            Err(FrameError::TooLarge {
                len: 4_294_967_295,
                ..
            })
        ));
        let big = Response::Error {
            message: "x".repeat(100),
        };
        assert!(matches!(
            encode_frame(&big, 50),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        assert!(matches!(
            decode::<Request>(&[0xff, 0xfe, 0x01]),
            Err(FrameError::Malformed(_))
        ));
        let mut frame = encode_frame(&Request::Status, 64).unwrap();
        frame.push(0);
        assert!(matches!(
            decode::<Request>(&frame[4..]),
            Err(FrameError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn async_read_sees_clean_eof_and_truncation() {
        let frame = encode_frame(&Request::Jobs, 64).unwrap();
        let mut whole: &[u8] = &frame;
        assert!(read_frame(&mut whole, 64).await.unwrap().is_some());
        assert!(read_frame(&mut whole, 64).await.unwrap().is_none());
        let mut cut: &[u8] = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame(&mut cut, 64).await,
            Err(FrameError::Truncated)
        ));
    }
}
