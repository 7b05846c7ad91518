//! SplitMix64: a tiny, seedable generator for benchmark mixes, test inputs and the candidates
//! of `make_prime`. Fast and well spread; not for anything that must be unpredictable.

use num_bigint::BigUint;

#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Seeded from the OS's randomness (through std's hash keys) and the clock, so that two
    /// runs, or two replays of one job, draw different numbers.
    pub fn from_entropy() -> SplitMix64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        SplitMix64(hasher.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform below `bound` (> 0), with negligible bias for the bounds used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A random odd number of exactly `bits` bits (`bits` >= 2).
    pub fn odd_biguint(&mut self, bits: u64) -> BigUint {
        let words = bits.div_ceil(64);
        let mut n = (0..words).fold(BigUint::default(), |acc, _| {
            (acc << 64u32) + self.next_u64()
        });
        n >>= words * 64 - bits;
        n.set_bit(bits - 1, true);
        n.set_bit(0, true);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_repeat_and_sizes_hold() {
        let (mut a, mut b) = (SplitMix64::new(42), SplitMix64::new(42));
        assert_eq!(a.next_u64(), b.next_u64());
        assert!(a.below(10) < 10);
        let n = a.odd_biguint(1024);
        assert_eq!(n.bits(), 1024);
        assert!(n.bit(0));
    }
}
