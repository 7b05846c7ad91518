//! "Make me a K-digit prime" (the book's `lib_primes:make_prime`): a uniformly random prime
//! with exactly K decimal digits. Candidates are drawn uniformly from the odd K-digit numbers
//! and the first prime is kept (rejection sampling), so every K-digit prime is equally likely,
//! unlike a search upwards from a random start, which favours primes after long gaps. Trial
//! division rejects most candidates before any modular exponentiation.

use std::sync::atomic::{AtomicBool, Ordering};

use num_bigint::BigUint;
use num_traits::Zero;

use super::{is_prime_big, Cancelled};

/// The smallest K-digit number, and how many K-digit numbers there are (9 * 10^(K-1)).
fn range(digits: u32) -> (BigUint, BigUint) {
    let low = num_traits::pow(BigUint::from(10u8), digits as usize - 1);
    let span = &low * 9u8;
    (low, span)
}

/// A uniform random number below `bound` (> 0) from 64-bit words, by rejection.
fn below(bound: &BigUint, next_u64: &mut impl FnMut() -> u64) -> BigUint {
    let bits = bound.bits();
    let words = bits.div_ceil(64);
    loop {
        let mut n = (0..words).fold(BigUint::zero(), |acc, _| (acc << 64u32) + next_u64());
        n >>= words * 64 - bits;
        if &n < bound {
            return n;
        }
    }
}

/// A uniformly random prime of exactly `digits` decimal digits (`digits` >= 1), drawing
/// randomness from `next_u64`. Checks `cancel` between candidates (and within each test).
pub fn make_prime(
    digits: u32,
    next_u64: &mut impl FnMut() -> u64,
    cancel: &AtomicBool,
) -> Result<BigUint, Cancelled> {
    let (low, span) = range(digits.max(1));
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Cancelled);
        }
        let candidate = &low + below(&span, next_u64);
        // Even candidates above 2 are never prime: skip the test, keep the draw uniform.
        if !candidate.bit(0) && candidate != BigUint::from(2u8) {
            continue;
        }
        if is_prime_big(&candidate, cancel)? {
            return Ok(candidate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitmix(seed: u64) -> impl FnMut() -> u64 {
        let mut rng = crate::rng::SplitMix64::new(seed);
        move || rng.next_u64()
    }

    static IDLE: AtomicBool = AtomicBool::new(false);

    #[test]
    fn primes_have_exactly_the_digits_asked_for() {
        let mut rng = splitmix(1);
        for digits in [1, 2, 5, 19, 20, 21, 50, 155, 309] {
            let p = make_prime(digits, &mut rng, &IDLE).unwrap();
            assert_eq!(p.to_string().len(), digits as usize, "{p}");
            assert_eq!(is_prime_big(&p, &IDLE), Ok(true), "{p}");
        }
    }

    #[test]
    fn every_one_digit_prime_comes_up_and_nothing_else() {
        let mut rng = splitmix(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let p = make_prime(1, &mut rng, &IDLE).unwrap();
            seen.insert(p.to_string());
        }
        let expected: std::collections::BTreeSet<String> =
            ["2", "3", "5", "7"].iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn two_digit_primes_are_drawn_about_equally_often() {
        let mut rng = splitmix(11);
        let mut counts = std::collections::BTreeMap::new();
        let draws = 21_000;
        for _ in 0..draws {
            *counts
                .entry(make_prime(2, &mut rng, &IDLE).unwrap().to_string())
                .or_insert(0u32) += 1;
        }
        // 21 two-digit primes: 1,000 each expected; a uniform draw stays well within ±20 %.
        assert_eq!(counts.len(), 21, "{counts:?}");
        for (p, n) in &counts {
            assert!((800..1200).contains(n), "{p} came up {n} times: {counts:?}");
        }
    }

    #[test]
    fn a_cancel_stops_the_search() {
        let cancelled = AtomicBool::new(true);
        assert_eq!(
            make_prime(300, &mut splitmix(3), &cancelled),
            Err(Cancelled)
        );
    }
}
