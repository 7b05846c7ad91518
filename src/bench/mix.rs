//! What `primed bench` submits: random numbers of a chosen mix, from a seeded generator so that
//! two runs (or a run against a baseline) test the same numbers.

pub use crate::rng::SplitMix64 as Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Below 10^6: the daemon's cheapest jobs.
    Small,
    /// Random odd 64-bit numbers.
    U64,
    /// Random odd 1024-bit numbers (most are composites that trial division rejects).
    #[value(name = "1024")]
    Bits1024,
    /// Random odd 2048-bit numbers.
    #[value(name = "2048")]
    Bits2048,
    /// 90 % u64, 8 % small, 1.5 % 1024-bit, 0.5 % 2048-bit.
    Mixed,
}

impl Mix {
    pub fn next(self, rng: &mut Rng) -> String {
        match self {
            Mix::Small => rng.below(1_000_000).to_string(),
            Mix::U64 => (rng.next_u64() | 1).to_string(),
            Mix::Bits1024 => rng.odd_biguint(1024).to_string(),
            Mix::Bits2048 => rng.odd_biguint(2048).to_string(),
            Mix::Mixed => match rng.below(1000) {
                0..=4 => Mix::Bits2048.next(rng),
                5..=19 => Mix::Bits1024.next(rng),
                20..=99 => Mix::Small.next(rng),
                _ => Mix::U64.next(rng),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::Number;

    #[test]
    fn mixes_give_valid_numbers_of_their_size() {
        let mut rng = Rng::new(7);
        for (mix, bits) in [(Mix::U64, 64), (Mix::Bits1024, 1024), (Mix::Bits2048, 2048)] {
            for _ in 0..20 {
                let n = Number::parse(&mix.next(&mut rng), 10_000).unwrap();
                assert!(n.bits() <= bits, "{mix:?}");
                if bits > 64 {
                    assert_eq!(n.bits(), bits, "{mix:?}");
                }
            }
        }
        let small: u64 = Mix::Small.next(&mut rng).parse().unwrap();
        assert!(small < 1_000_000);
    }

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let first: Vec<_> = (0..10).map(|_| Mix::Mixed.next(&mut a)).collect();
        let second: Vec<_> = (0..10).map(|_| Mix::Mixed.next(&mut b)).collect();
        assert_eq!(first, second);
    }
}
