//! The soak's oracle, independent of the daemon: a sieve below `LIMIT`, Lucas-Lehmer for the
//! big Mersenne numbers, and products of two big numbers (composite by construction).

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Num {
    Small(u64),
    /// Index into `Oracle::big`.
    Big(usize),
    /// [`POISON`]: the daemon runs with `--panic-on` it, so it must come back quarantined.
    Poison,
}

#[derive(Debug)]
pub(super) enum Expected {
    Tested(Verdict),
    Quarantined,
}

impl Expected {
    pub(super) fn matches(&self, verdict: &Verdict) -> bool {
        match self {
            Expected::Tested(expected) => expected == verdict,
            Expected::Quarantined => matches!(verdict, Verdict::Quarantined { .. }),
        }
    }
}

pub(super) struct BigNumber {
    pub(super) label: String,
    pub(super) text: String,
    pub(super) prime: bool,
}

pub(super) struct Oracle {
    /// Bit i set: 2i+1 is composite (odd numbers only).
    pub(super) composite_odd: Vec<u64>,
    pub(super) limit: u64,
    pub(super) big: Vec<BigNumber>,
}

impl Oracle {
    pub(super) fn new(limit: u64) -> Oracle {
        let odd = limit / 2 + 1;
        let mut bits = vec![0u64; odd.div_ceil(64) as usize];
        bits[0] |= 1; // 1 is not prime
        let mut i = 1u64;
        while (2 * i + 1) * (2 * i + 1) < limit {
            if bits[(i / 64) as usize] & (1 << (i % 64)) == 0 {
                let p = 2 * i + 1;
                let mut j = p * p / 2;
                while j < odd {
                    bits[(j / 64) as usize] |= 1 << (j % 64);
                    j += p;
                }
            }
            i += 1;
        }
        let oracle = Oracle {
            composite_odd: bits,
            limit,
            big: big_numbers(),
        };
        oracle.self_check();
        oracle
    }

    pub(super) fn small_is_prime(&self, n: u64) -> bool {
        assert!(n < self.limit, "{n} is beyond the sieve");
        match n {
            0 | 1 => false,
            2 => true,
            _ if n.is_multiple_of(2) => false,
            _ => {
                let i = n / 2;
                self.composite_odd[(i / 64) as usize] & (1 << (i % 64)) == 0
            }
        }
    }

    /// The answer `num` must get.
    pub(super) fn expected(&self, num: Num) -> Expected {
        match num {
            Num::Small(n) => Expected::Tested(Verdict::tested(self.small_is_prime(n))),
            Num::Big(i) => Expected::Tested(Verdict::tested(self.big[i].prime)),
            Num::Poison => Expected::Quarantined,
        }
    }

    pub(super) fn text(&self, num: Num) -> String {
        match num {
            Num::Small(n) => n.to_string(),
            Num::Big(i) => self.big[i].text.clone(),
            Num::Poison => POISON.to_string(),
        }
    }

    pub(super) fn describe(&self, num: Num) -> String {
        match num {
            Num::Small(n) => n.to_string(),
            Num::Big(i) => self.big[i].label.clone(),
            Num::Poison => format!("poison {POISON}"),
        }
    }

    /// The sieve against known prime counts and against trial division.
    pub(super) fn self_check(&self) {
        let count = |below: u64| (0..below).filter(|&n| self.small_is_prime(n)).count();
        assert_eq!(count(100), 25, "oracle self-check: pi(100)");
        assert_eq!(
            count(100_000.min(self.limit)),
            9592,
            "oracle self-check: pi(10^5)"
        );
        let known = [(10_000_000u64, 664_579u64), (100_000_000, 5_761_455)];
        if let Some(&(_, pi)) = known.iter().find(|(n, _)| *n == self.limit) {
            // Odd numbers below the limit are bits 0 .. limit/2; add 1 for the prime 2.
            let odd = (self.limit / 2) as usize;
            let bits = &self.composite_odd;
            let mut composites: u64 = bits[..odd / 64]
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum();
            if !odd.is_multiple_of(64) {
                composites += u64::from((bits[odd / 64] & ((1 << (odd % 64)) - 1)).count_ones());
            }
            assert_eq!(
                odd as u64 - composites + 1,
                pi,
                "oracle self-check: pi({})",
                self.limit
            );
        }
        let mut rng = Rng(SplitMix64::new(0x5eed));
        for _ in 0..2000 {
            let n = rng.below(self.limit);
            assert_eq!(
                self.small_is_prime(n),
                is_prime_by_trial_division(n),
                "oracle self-check: sieve and trial division disagree on {n}"
            );
        }
    }
}

pub(super) fn mersenne_number(p: u32) -> BigUint {
    (BigUint::from(1u8) << p) - 1u8
}

/// Lucas-Lehmer: for an odd prime p, 2^p - 1 is prime iff s_{p-2} = 0 (s_0 = 4, s_{k+1} = s_k^2 - 2).
pub(super) fn lucas_lehmer(p: u32) -> bool {
    assert!(
        p > 2 && is_prime_by_trial_division(u64::from(p)),
        "Lucas-Lehmer needs an odd prime exponent, not {p}"
    );
    let m = mersenne_number(p);
    let mut s = BigUint::from(4u8);
    for _ in 0..p - 2 {
        s = (&s * &s + &m - 2u8) % &m;
    }
    s == BigUint::from(0u8)
}

/// A few big numbers that keep a tester busy long enough for kills to land mid-job.
pub(super) fn big_numbers() -> Vec<BigNumber> {
    let mut big = Vec::new();
    // Known Mersenne prime exponents, confirmed here by Lucas-Lehmer.
    for p in [521, 607, 1279, 2203, 2281] {
        assert!(
            lucas_lehmer(p),
            "oracle self-check: 2^{p}-1 is a Mersenne prime"
        );
        big.push(BigNumber {
            label: format!("2^{p}-1"),
            text: mersenne_number(p).to_string(),
            prime: true,
        });
    }
    // Prime exponents whose Mersenne numbers are composite (2^1277-1 has no known factor, so
    // only a full probable-prime test can tell).
    for p in [523, 1277] {
        assert!(!lucas_lehmer(p), "oracle self-check: 2^{p}-1 is composite");
        big.push(BigNumber {
            label: format!("2^{p}-1"),
            text: mersenne_number(p).to_string(),
            prime: false,
        });
    }
    // Products of two big primes: composite by construction, no small factor.
    for (a, b) in [(521, 607), (607, 1279)] {
        big.push(BigNumber {
            label: format!("(2^{a}-1)(2^{b}-1)"),
            text: (mersenne_number(a) * mersenne_number(b)).to_string(),
            prime: false,
        });
    }
    big
}
