//! The `gmp` feature's engine: Baillie-PSW by GMP's `mpz_probab_prime_p`, through rug.
//!
//! gmp-mpfr-sys 1.7 builds GMP 6.3.0 from source. Since GMP 6.2, `mpz_probab_prime_p(n, reps)`
//! is: trial division by the primes below the bit length of n, then Baillie-PSW (a strong
//! Miller-Rabin test to base 2 and a strong Lucas test with Selfridge's method A, the same
//! parameters as `bpsw.rs`), then `reps - 24` Miller-Rabin rounds to pseudo-random bases, only
//! when `reps > 24`. With [`REPS`] = 24 the answer is exactly Baillie-PSW, so this engine and the
//! pure-Rust one give the same verdicts (the tests compare them on a few hundred numbers).
//!
//! Our own trial division runs first: it settles most composites without leaving Rust, and
//! returns its verdict even when `cancel` is set, as the pure-Rust path does. GMP's own trial
//! division then only repeats work below 4096; past 4096 bits it also divides by primes up to
//! the bit length, which can only turn a (hypothetical) Baillie-PSW pseudoprime into the correct
//! "composite", never change the verdict on a prime.

use std::sync::atomic::{AtomicBool, Ordering};

use num_bigint::BigUint;
use rug::integer::{IsPrime, Order};
use rug::Integer;

use super::{settled_by_small_cases, Cancelled};

/// Baillie-PSW and nothing else: GMP >= 6.2 replaces the first 24 Miller-Rabin rounds by
/// Baillie-PSW and runs `reps - 24` more only when reps exceeds 24. (With an older, system GMP,
/// 24 would mean 24 random-base Miller-Rabin rounds; gmp-mpfr-sys always builds its own 6.3.0.)
pub const REPS: u32 = 24;

/// The BigUint as a GMP integer: one copy of its 64-bit digits, least significant first.
pub fn to_integer(n: &BigUint) -> Integer {
    Integer::from_digits(&n.to_u64_digits(), Order::Lsf)
}

/// GMP's verdict on n (any n, including those below 2^64): trial division, then Baillie-PSW.
pub fn gmp_is_probable_prime(n: &Integer) -> bool {
    // Yes is GMP's "surely prime", given only below 2^51 or so; Probably passed Baillie-PSW.
    n.is_probably_prime(REPS) != IsPrime::No
}

/// [`super::is_prime_big`] with the `gmp` feature. GMP cannot be interrupted, so `cancel` is
/// checked before GMP starts and again when it returns.
pub(super) fn is_prime_big(n: &BigUint, cancel: &AtomicBool) -> Result<bool, Cancelled> {
    if let Some(verdict) = settled_by_small_cases(n) {
        return Ok(verdict);
    }
    poll(cancel)?;
    let verdict = gmp_is_probable_prime(&to_integer(n));
    // A cancel that arrived while GMP ran lands now, as it would have in the pure-Rust engine.
    poll(cancel)?;
    Ok(verdict)
}

fn poll(cancel: &AtomicBool) -> Result<(), Cancelled> {
    if cancel.load(Ordering::Relaxed) {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use num_integer::Integer as _;
    use num_traits::One;

    use super::super::{bpsw, pure, small};
    use super::*;

    /// The pure-Rust Baillie-PSW alone, without trial division.
    fn pure_bpsw(n: &BigUint) -> bool {
        bpsw::is_bpsw_probable_prime(n, &idle()) == Ok(true)
    }

    fn idle() -> AtomicBool {
        AtomicBool::new(false)
    }

    fn pow2(exponent: u32) -> BigUint {
        BigUint::one() << exponent
    }

    /// Fixed seed: the same numbers on every run.
    struct Rng(crate::rng::SplitMix64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0.next_u64()
        }

        fn odd(&mut self, bits: u64) -> BigUint {
            self.0.odd_biguint(bits)
        }

        fn bits(&mut self, low: u64, high: u64) -> u64 {
            low + self.next() % (high - low + 1)
        }
    }

    /// The first prime at or above an odd `start`, found by the pure-Rust engine.
    fn next_prime(mut n: BigUint) -> BigUint {
        while pure::is_prime_big(&n, &idle()) != Ok(true) {
            n += 2u32;
        }
        n
    }

    /// Checks both engines on n: the whole paths (trial division included) and Baillie-PSW
    /// alone (our `bpsw` against GMP on the same number, small factors or not).
    fn assert_engines_agree(n: &BigUint, what: &str) -> bool {
        let pure_verdict = pure::is_prime_big(n, &idle());
        assert_eq!(
            is_prime_big(n, &idle()),
            pure_verdict,
            "{what}: whole path, n = {n}"
        );
        let gmp_bpsw = gmp_is_probable_prime(&to_integer(n));
        assert_eq!(pure_bpsw(n), gmp_bpsw, "{what}: Baillie-PSW alone, n = {n}");
        assert_eq!(
            pure_verdict,
            Ok(gmp_bpsw),
            "{what}: trial division changed a verdict, n = {n}"
        );
        gmp_bpsw
    }

    #[test]
    fn conversion_round_trips() {
        let mut rng = Rng(crate::rng::SplitMix64::new(7));
        for bits in [1, 63, 64, 65, 127, 128, 129, 1000, 4097] {
            let n = rng.odd(bits);
            assert_eq!(to_integer(&n).to_string(), n.to_string(), "{bits} bits");
        }
        assert_eq!(to_integer(&BigUint::default()), 0);
    }

    #[test]
    fn reps_give_baillie_psw_only() {
        // 2^89 - 1 is prime and above GMP's "surely prime" bound, so Baillie-PSW passes and
        // GMP answers Probably; a composite strong pseudoprime to base 2 (2^67 - 1, a composite
        // Mersenne number) must be rejected by the Lucas half alone.
        assert_eq!(
            to_integer(&(pow2(89) - 1u32)).is_probably_prime(REPS),
            IsPrime::Probably
        );
        let m67 = pow2(67) - 1u32;
        assert!(bpsw::miller_rabin(&m67, 2, &idle()) == Ok(true));
        assert_eq!(to_integer(&m67).is_probably_prime(REPS), IsPrime::No);
    }

    #[test]
    fn random_odd_numbers_and_primes_agree() {
        let mut rng = Rng(crate::rng::SplitMix64::new(0xB125));
        let mut primes = 0;
        // Random odd numbers of many sizes that survive trial division (so both engines reach
        // Baillie-PSW), and the primes that follow random starts.
        for _ in 0..150 {
            let bits = rng.bits(65, 1100);
            let n = std::iter::repeat_with(|| rng.odd(bits))
                .find(|n| !small::has_small_prime_factor(n))
                .unwrap_or_default();
            primes += usize::from(assert_engines_agree(&n, "random odd"));
        }
        for _ in 0..60 {
            let bits = rng.bits(65, 1100);
            let p = next_prime(rng.odd(bits));
            assert!(assert_engines_agree(&p, "next prime"), "p = {p}");
            primes += 1;
        }
        for bits in [1024, 2048] {
            let p = next_prime(rng.odd(bits));
            assert!(assert_engines_agree(&p, "next prime"), "p = {p}");
        }
        // Plain random odd numbers, small factors included.
        for _ in 0..100 {
            let bits = rng.bits(65, 2100);
            assert_engines_agree(&rng.odd(bits), "random odd, any");
        }
        assert!(primes >= 60, "too few primes to compare: {primes}");
    }

    #[test]
    fn products_of_primes_agree() {
        let mut rng = Rng(crate::rng::SplitMix64::new(0x5E41));
        for _ in 0..40 {
            let (a, b) = (rng.bits(33, 500), rng.bits(33, 500));
            let p = next_prime(rng.odd(a));
            let q = next_prime(rng.odd(b));
            assert!(!assert_engines_agree(&(&p * &q), "p * q"));
            // Squares have no D with Jacobi(D/n) = -1: both must catch them.
            assert!(!assert_engines_agree(&(&p * &p), "p^2"));
            // q' = 2p - 1 prime makes p q' a frequent strong pseudoprime shape (Monier-Rabin).
            let q2 = &p * 2u32 - 1u32;
            if pure::is_prime_big(&q2, &idle()) == Ok(true) {
                assert!(!assert_engines_agree(&(&p * &q2), "p (2p - 1)"));
            }
        }
    }

    #[test]
    fn carmichael_numbers_agree() {
        // Chernick: (6k+1)(12k+1)(18k+1) is a Carmichael number when all three are prime.
        let mut found = 0;
        for k in (242_396u64..).step_by(1) {
            if found == 30 {
                break;
            }
            let factors = [6 * k + 1, 12 * k + 1, 18 * k + 1];
            if !factors.iter().all(|&f| super::super::is_prime_u64(f)) {
                continue;
            }
            let n: BigUint = factors.iter().map(|&f| BigUint::from(f)).product();
            assert!(BigUint::from(2u32).modpow(&(&n - 1u32), &n).is_one());
            assert!(!assert_engines_agree(&n, "Chernick Carmichael"));
            found += 1;
        }
        // Larger ones, about 180 bits: k random in [2^50, 2^58), factors checked as u64s.
        let mut rng = Rng(crate::rng::SplitMix64::new(0xCA41));
        let mut big = 0;
        while big < 10 {
            let k = (rng.next() >> 6) | (1 << 50);
            let factors = [6 * k + 1, 12 * k + 1, 18 * k + 1];
            if factors.iter().all(|&f| super::super::is_prime_u64(f)) {
                let n: BigUint = factors.iter().map(|&f| BigUint::from(f)).product();
                assert!(!assert_engines_agree(&n, "big Chernick Carmichael"));
                big += 1;
            }
        }
    }

    #[test]
    fn strong_pseudoprimes_to_base_2_agree() {
        // A composite Mersenne number 2^p - 1 (p prime) is a strong pseudoprime to base 2: 2 has
        // order p, which divides the odd part of 2^p - 2. Only the Lucas half can reject them.
        const MERSENNE_PRIME_EXPONENTS: [u32; 18] = [
            2, 3, 5, 7, 13, 17, 19, 31, 61, 89, 107, 127, 521, 607, 1279, 2203, 2281, 3217,
        ];
        let composite_exponents = (67u32..300)
            .chain([1061, 1277])
            .filter(|&p| super::super::is_prime_u64(p.into()))
            .filter(|p| !MERSENNE_PRIME_EXPONENTS.contains(p));
        let mut count = 0;
        for p in composite_exponents {
            let n = pow2(p) - 1u32;
            assert!(bpsw::miller_rabin(&n, 2, &idle()) == Ok(true), "M{p}");
            assert!(!assert_engines_agree(&n, "composite Mersenne"), "M{p}");
            count += 1;
        }
        assert_eq!(count, 43);
        for p in [61u32, 89, 107, 127, 521, 607, 1279, 2203] {
            assert!(
                assert_engines_agree(&(pow2(p) - 1u32), "Mersenne prime"),
                "M{p}"
            );
        }
        // Fermat numbers 2^2^k + 1, composite for 5 <= k <= 32 and strong pseudoprimes to 2.
        for k in 6..=11 {
            let n = pow2(1 << k) + 1u32;
            assert!(bpsw::miller_rabin(&n, 2, &idle()) == Ok(true), "F{k}");
            assert!(!assert_engines_agree(&n, "Fermat number"), "F{k}");
        }
        // Strong pseudoprimes to every base up to 37 and 41 (sympy).
        for n in [
            318_665_857_834_031_151_167_461u128,
            3_317_044_064_679_887_385_961_981,
        ] {
            assert!(!assert_engines_agree(&BigUint::from(n), "spsp(2..37)"));
        }
    }

    #[test]
    fn cancel_is_checked_before_and_after_gmp() {
        let p = next_prime(pow2(1023) + 1u32);
        assert_eq!(is_prime_big(&p, &AtomicBool::new(true)), Err(Cancelled));
        assert_eq!(is_prime_big(&p, &idle()), Ok(true));
        // Small factors are settled before the flag matters, as in the pure-Rust engine.
        assert_eq!(
            is_prime_big(&(&p * 3u32), &AtomicBool::new(true)),
            Ok(false)
        );
        assert!(p.is_odd());
    }
}
