//! Numbers as clients send them: strict parsing of decimal text into a canonical value, the
//! compact byte form the journal stores, and the cost estimate the balancer weighs jobs by.

use std::fmt;

use num_bigint::BigUint;

/// A non-negative integer to test. Values that fit in a machine word stay there, because most
/// jobs are small and the u64 path is two orders of magnitude faster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Number {
    Small(u64),
    Big(BigUint),
}

/// Why a piece of client input is not a number primed will test.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("empty input: expected a non-negative decimal integer")]
    Empty,
    #[error("{0:?} is negative: only non-negative integers can be tested")]
    Negative(String),
    #[error("{0:?} is not an integer: no decimal point or exponent allowed")]
    NotInteger(String),
    #[error("{input:?} is not a decimal integer: unexpected {found:?} at position {position}")]
    BadCharacter {
        input: String,
        found: char,
        position: usize,
    },
    #[error("number has {digits} digits, over the limit of {limit}")]
    TooLong { digits: usize, limit: usize },
    #[error("cannot make a prime of {digits} digits: the number of digits must be from 1 to {limit} (limits.max_digits)")]
    PrimeDigits { digits: u32, limit: usize },
}

/// Inputs longer than this are shown cut short in error messages.
const SHOWN_INPUT_CHARS: usize = 40;

fn shown(input: &str) -> String {
    match input.char_indices().nth(SHOWN_INPUT_CHARS) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_string(),
    }
}

impl Number {
    /// Parses decimal text: optional surrounding whitespace and a leading `+`, then digits only.
    /// Leading zeros are dropped and do not count towards `max_digits`.
    pub fn parse(text: &str, max_digits: usize) -> Result<Number, InputError> {
        let trimmed = text.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if body.is_empty() {
            return Err(InputError::Empty);
        }
        if let Some(position) = body.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(classify_bad(trimmed, body, position));
        }
        let significant = body.trim_start_matches('0');
        if significant.len() > max_digits {
            return Err(InputError::TooLong {
                digits: significant.len(),
                limit: max_digits,
            });
        }
        Ok(Self::from_digits(significant))
    }

    fn from_digits(significant: &str) -> Number {
        if significant.is_empty() {
            return Number::Small(0);
        }
        match significant.parse::<u64>() {
            Ok(n) => Number::Small(n),
            // Only digits reach here, so BigUint parsing cannot fail; zero is a safe fallback.
            Err(_) => BigUint::parse_bytes(significant.as_bytes(), 10)
                .map(Number::from)
                .unwrap_or(Number::Small(0)),
        }
    }

    /// Minimal big-endian magnitude: what the journal stores.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Number::Small(n) => {
                let bytes = n.to_be_bytes();
                let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
                bytes[first..].to_vec()
            }
            Number::Big(n) => n.to_bytes_be(),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Number {
        Number::from(BigUint::from_bytes_be(bytes))
    }

    pub fn bits(&self) -> u64 {
        match self {
            Number::Small(n) => u64::from(64 - n.leading_zeros()),
            Number::Big(n) => n.bits(),
        }
    }

    /// Decimal digits. Converting a big number to decimal costs far less than testing it,
    /// and the big-job alarm's threshold must mean exactly what it says.
    pub fn digits(&self) -> u64 {
        match self {
            Number::Small(n) => u64::from(n.checked_ilog10().unwrap_or(0)) + 1,
            Number::Big(n) => n.to_string().len() as u64,
        }
    }

    /// Estimated relative cost of testing this number, in units of one u64 test. A modular
    /// exponentiation does `bits` multiplications of `words`-word numbers (schoolbook: words²),
    /// so the estimate grows with the cube of the size.
    pub fn cost(&self) -> u64 {
        cost_of_bits(self.bits())
    }
}

/// See [`Number::cost`].
pub fn cost_of_bits(bits: u64) -> u64 {
    if bits <= 64 {
        return 1;
    }
    let words = bits.div_ceil(64);
    words.saturating_mul(words).saturating_mul(bits)
}

fn classify_bad(trimmed: &str, body: &str, position: usize) -> InputError {
    let found = body[position..].chars().next().unwrap_or('?');
    let is_decimal_like = body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if trimmed.starts_with('-') && body[1..].bytes().all(|b| b.is_ascii_digit()) && body.len() > 1 {
        InputError::Negative(shown(trimmed))
    } else if is_decimal_like && matches!(found, '.' | 'e' | 'E') {
        InputError::NotInteger(shown(trimmed))
    } else {
        InputError::BadCharacter {
            input: shown(trimmed),
            found,
            position: position + (trimmed.len() - body.len()),
        }
    }
}

impl From<BigUint> for Number {
    fn from(n: BigUint) -> Self {
        match u64::try_from(&n) {
            Ok(small) => Number::Small(small),
            Err(_) => Number::Big(n),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Small(n) => write!(f, "{n}"),
            Number::Big(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Number, InputError> {
        Number::parse(text, 50)
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(parse("97"), Ok(Number::Small(97)));
        assert_eq!(parse("  +0097\n"), Ok(Number::Small(97)));
        assert_eq!(parse("000"), Ok(Number::Small(0)));
        assert_eq!(parse("18446744073709551615"), Ok(Number::Small(u64::MAX)));
        let big = parse("18446744073709551616").map(|n| n.to_string());
        assert_eq!(big.as_deref(), Ok("18446744073709551616"));
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(parse(""), Err(InputError::Empty));
        assert_eq!(parse("   "), Err(InputError::Empty));
        assert_eq!(parse("+"), Err(InputError::Empty));
        assert_eq!(parse("-5"), Err(InputError::Negative("-5".into())));
        assert_eq!(parse("1.5"), Err(InputError::NotInteger("1.5".into())));
        assert_eq!(parse("1e9"), Err(InputError::NotInteger("1e9".into())));
        assert!(matches!(
            parse("abc"),
            Err(InputError::BadCharacter {
                found: 'a',
                position: 0,
                ..
            })
        ));
        assert!(matches!(
            parse("12x4"),
            Err(InputError::BadCharacter {
                found: 'x',
                position: 2,
                ..
            })
        ));
        assert!(matches!(parse("--5"), Err(InputError::BadCharacter { .. })));
        let message = parse("12\u{fffd}").map_err(|e| e.to_string());
        assert!(message.is_err_and(|m| m.contains("not a decimal integer")));
    }

    #[test]
    fn digit_limit_counts_significant_digits() {
        assert!(Number::parse(&"9".repeat(50), 50).is_ok());
        assert!(Number::parse(&format!("000{}", "9".repeat(50)), 50).is_ok());
        assert_eq!(
            Number::parse(&"9".repeat(51), 50),
            Err(InputError::TooLong {
                digits: 51,
                limit: 50
            })
        );
    }

    #[test]
    fn long_garbage_is_shown_cut_short() {
        let garbage = "x".repeat(10_000);
        let message = parse(&garbage).map_err(|e| e.to_string());
        assert!(message.is_err_and(|m| m.len() < 200));
    }

    #[test]
    fn bytes_round_trip() {
        for text in [
            "0",
            "1",
            "255",
            "256",
            "18446744073709551615",
            "340282366920938463463374607431768211457",
        ] {
            let n = parse(text).unwrap();
            assert_eq!(Number::from_bytes(&n.to_bytes()), n, "{text}");
        }
        assert!(Number::Small(0).to_bytes().is_empty());
    }

    #[test]
    fn digits_are_exact() {
        let digits = |text: &str| Number::parse(text, 1000).unwrap().digits();
        assert_eq!(digits("0"), 1);
        assert_eq!(digits("9"), 1);
        assert_eq!(digits("10"), 2);
        assert_eq!(digits(&u64::MAX.to_string()), 20);
        assert_eq!(digits(&"9".repeat(100)), 100);
        assert_eq!(digits(&format!("1{}", "0".repeat(100))), 101);
    }

    #[test]
    fn cost_grows_with_size() {
        assert_eq!(Number::Small(97).cost(), 1);
        assert_eq!(Number::Small(u64::MAX).cost(), 1);
        let c128 = cost_of_bits(128);
        let c1024 = cost_of_bits(1024);
        let c2048 = cost_of_bits(2048);
        assert!(1 < c128 && c128 < c1024 && c1024 < c2048);
        assert_eq!(c2048 / c1024, 8, "cubic growth");
        assert_eq!(
            cost_of_bits(u64::MAX),
            u64::MAX,
            "saturates instead of overflowing"
        );
    }
}
