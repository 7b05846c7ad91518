//! Primality testing: the one place in the crate that decides whether a number is prime.
//!
//! Values below 2^64 get a deterministic answer from `machine-prime`. Larger values are trial
//! divided by the small primes (which settles most composites without any modular
//! exponentiation) and then run through Baillie-PSW, which has no known counterexample.
//!
//! Baillie-PSW has two engines. The pure-Rust one ([`pure`], always compiled) polls a caller
//! supplied cancellation flag between modular squarings, since the large path can take seconds
//! to minutes for numbers with thousands of digits. With the `gmp` cargo feature,
//! [`is_prime_big`] hands the number to GMP instead (`mpz_probab_prime_p`, the same test at GMP
//! speed), which cannot be interrupted: see [`is_prime_big`] for what a cancel does then.

mod bpsw;
#[cfg(feature = "gmp")]
pub mod gmp;
mod make;
mod montgomery;
mod residues;
mod small;

use std::sync::atomic::AtomicBool;

use num_bigint::BigUint;
use num_traits::ToPrimitive;

pub use make::make_prime;

/// The computation was abandoned because `cancel` became true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Deterministic primality for any u64.
pub fn is_prime_u64(n: u64) -> bool {
    small::is_prime_u64(n)
}

/// Primality for any size. n < 2^64 delegates to [`is_prime_u64`]. Above: trial division by small
/// primes first (most composites exit there), then Baillie-PSW = strong Miller-Rabin base 2 plus
/// strong Lucas probable-prime test with Selfridge's method A parameters (with the perfect-square
/// check, since no D with Jacobi(D/n) = -1 exists for squares).
///
/// Verdicts that need no modular arithmetic (n < 2^64, or a small prime factor) are returned
/// even when `cancel` is already set; otherwise a `cancel` already set returns `Err(Cancelled)`
/// at once.
///
/// Default build ([`pure::is_prime_big`]): checks `cancel` (Relaxed load) at least once per
/// squaring/Lucas-doubling step, so a test of a 10,000-digit number stops within milliseconds of
/// cancel being set; returns `Err(Cancelled)` then.
///
/// With the `gmp` feature, Baillie-PSW runs inside GMP, which cannot be interrupted: a cancel set
/// while GMP runs lands when GMP returns (the verdict is then dropped and `Err(Cancelled)`
/// returned, as in the default build). The calling thread stays busy until then. Measured on the
/// benchmark machine (README, "Primality engine"): 1.5 ms for a 1024-bit prime, 10 ms at 2048
/// bits, 6.5 s for 2^23209 - 1 (6,987 digits), so expect 10 s or more for a prime at the
/// default limit of 10,000 digits.
pub fn is_prime_big(n: &BigUint, cancel: &AtomicBool) -> Result<bool, Cancelled> {
    #[cfg(feature = "gmp")]
    {
        gmp::is_prime_big(n, cancel)
    }
    #[cfg(not(feature = "gmp"))]
    {
        pure::is_prime_big(n, cancel)
    }
}

/// The answers that need no modular arithmetic: n < 2^64, or n >= 2^64 with a small prime factor.
fn settled_by_small_cases(n: &BigUint) -> Option<bool> {
    if let Some(n) = n.to_u64() {
        return Some(is_prime_u64(n));
    }
    // Every table prime is below 2^64 <= n, so a table prime dividing n is a proper factor.
    small::has_small_prime_factor(n).then_some(false)
}

/// The pure-Rust engine, compiled in every build: the default build's [`is_prime_big`], and with
/// the `gmp` feature still here, so tests and benchmarks can compare both engines in one run.
pub mod pure {
    use std::sync::atomic::AtomicBool;

    use num_bigint::BigUint;

    use super::{bpsw, settled_by_small_cases, Cancelled};

    /// [`super::is_prime_big`] of the default build: the u64 test, trial division, then the
    /// pure-Rust Baillie-PSW, polling `cancel` before every modular squaring.
    pub fn is_prime_big(n: &BigUint, cancel: &AtomicBool) -> Result<bool, Cancelled> {
        match settled_by_small_cases(n) {
            Some(verdict) => Ok(verdict),
            None => bpsw::is_bpsw_probable_prime(n, cancel),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use num_traits::One;

    use super::*;

    fn check(n: &BigUint) -> Result<bool, Cancelled> {
        is_prime_big(n, &AtomicBool::new(false))
    }

    fn pow2(exponent: u32) -> BigUint {
        BigUint::one() << exponent
    }

    fn mersenne(exponent: u32) -> BigUint {
        pow2(exponent) - 1u32
    }

    /// Independent of the module under test: Miller-Rabin with the first 12 prime bases is
    /// deterministic below 3.18e23 (Sorenson & Webster 2015), far above 2^64 + 3000.
    fn reference_is_prime(n: &BigUint) -> bool {
        const BASES: [u32; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
        if n < &BigUint::from(2u32) {
            return false;
        }
        if let Some(&p) = BASES.iter().find(|&&p| n % p == BigUint::default()) {
            return *n == BigUint::from(p);
        }
        let n_minus_1 = n - 1u32;
        let s = n_minus_1.trailing_zeros().unwrap_or(0);
        let d = &n_minus_1 >> s;
        BASES.iter().all(|&a| {
            let mut x = BigUint::from(a).modpow(&d, n);
            if x.is_one() || x == n_minus_1 {
                return true;
            }
            (1..s).any(|_| {
                x = &x * &x % n;
                x == n_minus_1
            })
        })
    }

    #[test]
    fn tiny_values() {
        for (n, expected) in [(0u32, false), (1, false), (2, true), (3, true), (4, false)] {
            assert_eq!(is_prime_u64(n.into()), expected, "n = {n}");
            assert_eq!(check(&n.into()), Ok(expected), "n = {n}");
        }
    }

    #[test]
    fn big_agrees_with_u64_below_100_000() {
        for n in 0u64..100_000 {
            assert_eq!(check(&n.into()), Ok(is_prime_u64(n)), "n = {n}");
        }
    }

    #[test]
    fn small_carmichael_numbers_are_composite() {
        for n in [561u64, 1105, 1729, 2465, 2821, 6601, 8911] {
            // A Fermat test to base 2 is fooled by all of these; make sure the vector is one.
            let big = BigUint::from(n);
            assert!(BigUint::from(2u32).modpow(&(&big - 1u32), &big).is_one());
            assert!(!is_prime_u64(n), "n = {n}");
            assert_eq!(check(&big), Ok(false), "n = {n}");
        }
    }

    #[test]
    fn chernick_carmichael_above_2_pow_64_is_composite() {
        // (6k+1)(12k+1)(18k+1) is a Carmichael number whenever all three factors are prime.
        let (k, n) = (1u64..)
            .map(|k| {
                let factors = [6 * k + 1, 12 * k + 1, 18 * k + 1];
                let n = factors
                    .iter()
                    .map(|&f| BigUint::from(f))
                    .product::<BigUint>();
                (k, n, factors)
            })
            .find(|(_, n, factors)| n.bits() > 64 && factors.iter().all(|&f| is_prime_u64(f)))
            .map(|(k, n, _)| (k, n))
            .unwrap_or_default();
        // sympy: the first such k with n > 2^64 is 242396, n = 18457883288813385649.
        assert_eq!(k, 242_396);
        assert_eq!(n, BigUint::from(18_457_883_288_813_385_649u128));
        assert!(BigUint::from(2u32).modpow(&(&n - 1u32), &n).is_one());
        assert!(!small::has_small_prime_factor(&n), "must reach Baillie-PSW");
        assert_eq!(check(&n), Ok(false));
    }

    #[test]
    fn strong_pseudoprimes_to_many_bases_are_composite() {
        // Strong pseudoprime to bases 2..=31 (sympy), the u64 path.
        assert!(!is_prime_u64(3_825_123_056_546_413_051));
        // Strong pseudoprimes to bases 2..=37 and 2..=41 (sympy): Miller-Rabin cannot catch
        // them, so the big path must reject them in the Lucas test.
        for n in [
            318_665_857_834_031_151_167_461u128,
            3_317_044_064_679_887_385_961_981,
        ] {
            let n = BigUint::from(n);
            assert!(!small::has_small_prime_factor(&n), "must reach Baillie-PSW");
            let cancel = AtomicBool::new(false);
            for base in [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
                assert_eq!(
                    bpsw::miller_rabin(&n, base, &cancel),
                    Ok(true),
                    "{n} base {base}"
                );
            }
            assert_eq!(check(&n), Ok(false), "n = {n}");
        }
    }

    #[test]
    fn mersenne_numbers() {
        for e in [61, 89, 107, 127, 521, 607, 1279] {
            assert_eq!(check(&mersenne(e)), Ok(true), "2^{e} - 1 is prime");
        }
        for e in [67, 257] {
            assert_eq!(check(&mersenne(e)), Ok(false), "2^{e} - 1 is composite");
        }
    }

    #[test]
    fn around_2_pow_32() {
        assert!(is_prime_u64(4_294_967_291));
        assert!(is_prime_u64(4_294_967_311));
        assert!(!is_prime_u64(4_294_967_297));
        assert_eq!(check(&4_294_967_291u64.into()), Ok(true));
        assert_eq!(check(&4_294_967_297u64.into()), Ok(false));
    }

    #[test]
    fn around_2_pow_64() {
        assert!(is_prime_u64(u64::MAX - 58));
        assert_eq!(check(&(pow2(64) - 59u32)), Ok(true));
        assert_eq!(check(&(pow2(64) + 1u32)), Ok(false));
        // sympy.nextprime(2^64) = 2^64 + 13.
        assert_eq!(check(&(pow2(64) + 13u32)), Ok(true));
        for offset in (0u32..13).step_by(2) {
            assert_eq!(check(&(pow2(64) + offset)), Ok(false), "2^64 + {offset}");
        }
    }

    #[test]
    fn around_2_pow_128() {
        // sympy: prevprime(2^128) = 2^128 - 159, nextprime(2^128) = 2^128 + 51.
        assert_eq!(check(&(pow2(128) - 159u32)), Ok(true));
        assert_eq!(check(&(pow2(128) + 51u32)), Ok(true));
        assert_eq!(check(&(pow2(128) + 1u32)), Ok(false));
    }

    #[test]
    fn window_above_2_pow_64_matches_reference_and_sympy() {
        // sympy.isprime over 2^64 + [0, 3000].
        const SYMPY_OFFSETS: [u32; 64] = [
            13, 37, 51, 81, 93, 141, 307, 331, 393, 493, 541, 597, 637, 651, 717, 741, 745, 757,
            805, 807, 885, 925, 961, 981, 997, 1005, 1081, 1113, 1243, 1285, 1341, 1353, 1407,
            1413, 1417, 1483, 1521, 1555, 1675, 1785, 1795, 1831, 1885, 1917, 1927, 1945, 1981,
            2037, 2065, 2071, 2193, 2197, 2221, 2253, 2323, 2347, 2505, 2533, 2535, 2713, 2751,
            2803, 2815, 2913,
        ];
        let base = pow2(64);
        let mut found = Vec::new();
        for offset in 0u32..=3000 {
            let n = &base + offset;
            let verdict = check(&n);
            assert_eq!(verdict, Ok(reference_is_prime(&n)), "2^64 + {offset}");
            if verdict == Ok(true) {
                found.push(offset);
            }
        }
        assert_eq!(found, SYMPY_OFFSETS);
    }

    #[test]
    fn window_above_2_pow_128_matches_sympy() {
        // sympy.isprime over 2^128 + [0, 1000].
        const SYMPY_OFFSETS: [u32; 12] = [51, 81, 165, 273, 385, 421, 463, 573, 625, 757, 817, 847];
        let base = pow2(128);
        let found: Vec<u32> = (0u32..=1000)
            .filter(|&offset| check(&(&base + offset)) == Ok(true))
            .collect();
        assert_eq!(found, SYMPY_OFFSETS);
    }

    #[test]
    fn first_prime_above_2_pow_1023() {
        // sympy.nextprime(2^1023) = 2^1023 + 1155.
        let base = pow2(1023);
        for offset in (1u32..1155).step_by(2) {
            assert_eq!(check(&(&base + offset)), Ok(false), "2^1023 + {offset}");
        }
        assert_eq!(check(&(&base + 1155u32)), Ok(true));
    }

    #[test]
    fn first_prime_above_2_pow_2047() {
        // sympy.nextprime(2^2047) = 2^2047 + 1919.
        assert_eq!(check(&(pow2(2047) + 1919u32)), Ok(true));
    }

    #[test]
    fn squares_and_semiprimes_of_big_primes_are_composite() {
        // 2^64 + 13, 2^64 + 37, 2^128 + 51 are prime (sympy); 2^127 - 1 is a Mersenne prime.
        let p = pow2(64) + 13u32;
        let q = pow2(64) + 37u32;
        let r = pow2(128) + 51u32;
        let m = mersenne(127);
        for n in [
            &p * &p,
            &q * &q,
            &r * &r,
            &m * &m,
            &p * &q,
            &p * &r,
            &q * &m,
        ] {
            assert_eq!(check(&n), Ok(false), "n = {n}");
        }
    }

    #[test]
    fn small_factors_are_found_before_any_cancellable_work() {
        // With cancel already set, only trial division can produce a verdict.
        let cancelled = AtomicBool::new(true);
        let m521 = mersenne(521);
        for p in [2u32, 3, 5, 1999, 4093] {
            assert_eq!(
                is_prime_big(&(&m521 * p), &cancelled),
                Ok(false),
                "{p} * M521"
            );
        }
        // 4099 is the first prime past the table, so this one needs Baillie-PSW.
        assert_eq!(is_prime_big(&(&m521 * 4099u32), &cancelled), Err(Cancelled));
    }

    #[test]
    fn cancel_already_set_returns_quickly() {
        // 2^9689 - 1 is a 2917-digit prime: nothing short of the full test would settle it.
        let n = mersenne(9689);
        let started = Instant::now();
        assert_eq!(is_prime_big(&n, &AtomicBool::new(true)), Err(Cancelled));
        // The full test takes minutes in a debug build; a generous bound keeps CI noise out.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn cancel_from_another_thread_stops_a_long_test() {
        let n = mersenne(9689);
        let cancel = AtomicBool::new(false);
        let verdict = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                cancel.store(true, Ordering::Relaxed);
            });
            is_prime_big(&n, &cancel)
        });
        assert_eq!(verdict, Err(Cancelled));
    }
}
