//! The cheap end of primality: the u64 oracle and trial division of big numbers by small primes.

use num_bigint::BigUint;

/// Trial division bound. Past a few hundred primes each extra group of primes costs a pass over
/// n but removes few more composites: below 2^12 about 13.5% of random odd numbers survive
/// (Mertens: 2e^-γ / ln 4096), and those pay for a full Miller-Rabin.
const SIEVE_LIMIT: usize = 4096;

const IS_PRIME_BELOW_LIMIT: [bool; SIEVE_LIMIT] = sieve();

const SMALL_PRIME_COUNT: usize = count_true(&IS_PRIME_BELOW_LIMIT);

/// All primes below `SIEVE_LIMIT`, ascending. Built at compile time so the table cannot contain a
/// typo.
pub(super) const SMALL_PRIMES: [u64; SMALL_PRIME_COUNT] = collect_primes(&IS_PRIME_BELOW_LIMIT);

const fn sieve() -> [bool; SIEVE_LIMIT] {
    let mut is_prime = [true; SIEVE_LIMIT];
    is_prime[0] = false;
    is_prime[1] = false;
    let mut p = 2;
    while p * p < SIEVE_LIMIT {
        if is_prime[p] {
            let mut multiple = p * p;
            while multiple < SIEVE_LIMIT {
                is_prime[multiple] = false;
                multiple += p;
            }
        }
        p += 1;
    }
    is_prime
}

const fn count_true(flags: &[bool]) -> usize {
    let mut count = 0;
    let mut i = 0;
    while i < flags.len() {
        if flags[i] {
            count += 1;
        }
        i += 1;
    }
    count
}

const fn collect_primes<const N: usize>(is_prime: &[bool]) -> [u64; N] {
    let mut primes = [0; N];
    let mut next = 0;
    let mut i = 0;
    while i < is_prime.len() {
        if is_prime[i] {
            primes[next] = i as u64;
            next += 1;
        }
        i += 1;
    }
    primes
}

/// machine-prime promises a correct answer for every u64 (no probabilistic step is left).
pub(super) fn is_prime_u64(n: u64) -> bool {
    machine_prime::is_prime(n)
}

/// Whether some prime below `SIEVE_LIMIT` divides `n` (including `n` being that prime itself, so
/// a `true` only means "composite" for n >= SIEVE_LIMIT).
pub(super) fn has_small_prime_factor(n: &BigUint) -> bool {
    // One pass over n per product of primes that fits a u64, instead of one pass per prime; the
    // per-prime checks are then on a single machine word.
    let mut group_start = 0;
    let mut product: u64 = 1;
    for (i, &p) in SMALL_PRIMES.iter().enumerate() {
        match product.checked_mul(p) {
            Some(grown) => product = grown,
            None => {
                if group_divides(n, product, &SMALL_PRIMES[group_start..i]) {
                    return true;
                }
                group_start = i;
                product = p;
            }
        }
    }
    group_divides(n, product, &SMALL_PRIMES[group_start..])
}

/// `product` is the product of `primes`, so n mod p == (n mod product) mod p for each of them.
fn group_divides(n: &BigUint, product: u64, primes: &[u64]) -> bool {
    let rem = rem_u64(n, product);
    primes.iter().any(|&p| rem.is_multiple_of(p))
}

/// n mod m for nonzero m, without the clone of n that num-bigint's `%` by a u64 makes.
pub(super) fn rem_u64(n: &BigUint, m: u64) -> u64 {
    let m = u128::from(m);
    let rem = n
        .iter_u64_digits()
        .rev()
        .fold(0, |rem, digit| ((rem << 64) | u128::from(digit)) % m);
    // rem < m <= u64::MAX, so the cast is lossless.
    rem as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_traits::One;

    fn naive_is_prime(n: u64) -> bool {
        n >= 2
            && (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    }

    #[test]
    fn table_is_exactly_the_primes_below_the_limit() {
        let expected: Vec<u64> = (0..SIEVE_LIMIT as u64)
            .filter(|&n| naive_is_prime(n))
            .collect();
        assert_eq!(SMALL_PRIMES.to_vec(), expected);
        // pi(4095) = 564 (sympy.primepi).
        assert_eq!(SMALL_PRIMES.len(), 564);
        assert_eq!(SMALL_PRIMES.last(), Some(&4093));
    }

    #[test]
    fn u64_edge_values() {
        for n in [0u64, 1, 4, 9, 15, 4_294_967_297, u64::MAX] {
            assert!(!is_prime_u64(n), "{n} is composite or a unit");
        }
        for n in [2u64, 3, 5, 4_294_967_291, 4_294_967_311, u64::MAX - 58] {
            assert!(is_prime_u64(n), "{n} is prime");
        }
    }

    #[test]
    fn u64_agrees_with_trial_division_below_100_000() {
        for n in 0..100_000 {
            assert_eq!(is_prime_u64(n), naive_is_prime(n), "n = {n}");
        }
    }

    #[test]
    fn rem_u64_matches_bignum_remainder() {
        let n: BigUint = (BigUint::one() << 1000u32) - 12_345u32;
        for m in [
            1u64,
            2,
            3,
            4093,
            0xFFFF_FFFF,
            0xFFFF_FFFF_FFFF_FFC5,
            u64::MAX,
        ] {
            assert_eq!(BigUint::from(rem_u64(&n, m)), &n % m, "m = {m}");
        }
        assert_eq!(rem_u64(&BigUint::default(), 7), 0);
    }

    #[test]
    fn small_factor_found_for_every_table_prime() {
        // 2^64 + 13 is prime (sympy), so the only small factor of p * q is p.
        let q: BigUint = (BigUint::one() << 64u32) + 13u32;
        assert!(!has_small_prime_factor(&q));
        for &p in SMALL_PRIMES.iter() {
            assert!(has_small_prime_factor(&(&q * p)), "p = {p}");
        }
    }

    #[test]
    fn no_small_factor_when_all_factors_exceed_the_limit() {
        // 4099 and 4111 are the two smallest primes above the limit.
        let n = BigUint::from(4099u64 * 4111) * BigUint::from(4099u64 * 4111);
        assert!(!has_small_prime_factor(&n));
        // Mersenne prime 2^127 - 1.
        let m127: BigUint = (BigUint::one() << 127u32) - 1u32;
        assert!(!has_small_prime_factor(&m127));
    }
}
