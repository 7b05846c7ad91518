//! The one bincode codec, for the wire and for stored records: encoding, and decoding that a
//! hostile or damaged input cannot make allocate without bound.
//!
//! bincode's `config::standard()` has no limit: a decoder allocates a claimed length before it
//! checks what is left, so 18 bytes claiming a 2^62-byte string abort the process. Every decode
//! here runs under a limit derived from the input's own length. bincode counts 8 bytes for every
//! integer it reads, however short its varint, so the limit is 16 times the input (at least
//! 64 KiB): decoding `len` bytes never claims more than that, and serde's own pre-allocation of
//! a sequence is capped at 1 MiB. Errors are said in words, not as bincode's debug text.

use bincode::config::{self, Configuration};
use bincode::error::DecodeError;
use serde::{de::DeserializeOwned, Serialize};

/// Why bytes are not a message or record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Malformed> {
    bincode::serde::encode_to_vec(value, config::standard()).map_err(|e| Malformed(e.to_string()))
}

/// Appends `value`'s encoding to `out` (for a frame whose header is already in place).
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), Malformed> {
    bincode::serde::encode_into_std_write(value, out, config::standard())
        .map(drop)
        .map_err(|e| Malformed(e.to_string()))
}

/// Decodes exactly `bytes`: trailing bytes are an error, not silently ignored.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Malformed> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(Malformed(format!(
            "{} unexpected bytes after the end of the message",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Decodes a value from the start of `bytes`; returns it with the number of bytes it took.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), Malformed> {
    const KIB: usize = 1 << 10;
    let claim = bytes.len().saturating_mul(16);
    let decoded = match claim {
        c if c <= 64 * KIB => with_limit::<T, { 64 * KIB }>(bytes),
        c if c <= KIB * KIB => with_limit::<T, { KIB * KIB }>(bytes),
        c if c <= 16 * KIB * KIB => with_limit::<T, { 16 * KIB * KIB }>(bytes),
        c if c <= 256 * KIB * KIB => with_limit::<T, { 256 * KIB * KIB }>(bytes),
        _ => with_limit::<T, { 4096 * KIB * KIB }>(bytes),
    };
    decoded.map_err(|e| Malformed(describe(&e)))
}

fn with_limit<T: DeserializeOwned, const N: usize>(
    bytes: &[u8],
) -> Result<(T, usize), DecodeError> {
    let limited: Configuration<_, _, config::Limit<N>> = config::standard().with_limit::<N>();
    bincode::serde::decode_from_slice(bytes, limited)
}

/// bincode's errors display as debug text (`UnexpectedEnd { additional: 1 }`); say them.
fn describe(error: &DecodeError) -> String {
    match error {
        DecodeError::UnexpectedEnd { .. } => "the message ends before it is complete".into(),
        DecodeError::LimitExceeded => {
            "the message claims a length far longer than the bytes it came in".into()
        }
        DecodeError::UnexpectedVariant {
            type_name, found, ..
        } => {
            let name = type_name.rsplit("::").next().unwrap_or(type_name);
            format!("unknown kind {found} of {name}")
        }
        DecodeError::Utf8 { .. } => "text that is not valid UTF-8".into(),
        DecodeError::InvalidBooleanValue(value) => format!("{value} where a true/false belongs"),
        DecodeError::InvalidCharEncoding(_) => "an invalid character".into(),
        DecodeError::OutsideUsizeRange(value) => format!("a length of {value}, out of range"),
        DecodeError::InvalidIntegerType { .. } => "an integer of the wrong width".into(),
        DecodeError::OtherString(text) => text.clone(),
        DecodeError::Other(text) => (*text).to_string(),
        other => format!("undecodable ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_claimed_length_is_refused_not_allocated() {
        // A one-field struct holding a String: a varint length of 2^62 (0xFD + u64 LE), then 'a'.
        let mut bytes = vec![0xFD];
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        bytes.push(b'a');
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(err.0.contains("claims a length"), "{err}");
    }

    #[test]
    fn values_round_trip_and_trailing_bytes_are_refused() {
        let value = (7u64, "97".to_string(), vec![1u32, 2, 3]);
        let mut bytes = encode(&value).unwrap();
        assert_eq!(decode::<(u64, String, Vec<u32>)>(&bytes).unwrap(), value);
        bytes.push(0);
        let err = decode::<(u64, String, Vec<u32>)>(&bytes).unwrap_err();
        assert!(err.0.contains("1 unexpected bytes"), "{err}");
    }

    #[test]
    fn errors_are_words_not_debug_text() {
        let err = decode::<(u64, u64)>(&[1]).unwrap_err();
        assert_eq!(err.0, "the message ends before it is complete");
        let err = decode::<String>(&[2, 0xff, 0xfe]).unwrap_err();
        assert_eq!(err.0, "text that is not valid UTF-8");
        let err = decode::<bool>(&[7]).unwrap_err();
        assert!(!err.0.contains('{'), "{err}");
    }
}
