//! Baillie-PSW: a strong Miller-Rabin test to base 2 and a strong Lucas test with Selfridge's
//! parameters. The composites that fool each test are of very different shapes, and no number
//! passing both is known.
//!
//! The exponentiations are written out rather than using `BigUint::modpow`: one modpow on a
//! 10,000-digit number runs for seconds and could not be cancelled part way. They run on
//! [`Residues`]: Montgomery arithmetic up to [`MONTGOMERY_MAX_LIMBS`], num-bigint above.

use std::sync::atomic::{AtomicBool, Ordering};

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive};

use super::montgomery::Montgomery;
use super::residues::{Plain, Residues};
use super::small::rem_u64;
use super::Cancelled;

/// Up to this many 64-bit limbs (6144 bits), schoolbook Montgomery products beat num-bigint's
/// product-then-remainder. Measured with Miller-Rabin on random odd moduli: 2.3x faster at 1024
/// bits, 1.7x at 4096, still 1.3x at 8192 and 10,240 bits; a tie at 16,384, and by 24,576 bits
/// num-bigint's Karatsuba and Toom-3 products win by 1.2x. The limit sits lower than the random
/// moduli alone suggest because num-bigint is much faster on sparse operands: base-2
/// Miller-Rabin modulo a Mersenne number 2^p - 1 only ever squares powers of two, so
/// 2^9689 - 1 takes 0.55 s with num-bigint and 1.2 s in Montgomery form.
pub(super) const MONTGOMERY_MAX_LIMBS: usize = 96;

/// Runs `$body` with `$r` bound to the residues modulo odd `$n` >= 3 in the faster engine.
macro_rules! with_residues {
    ($n:expr, |$r:ident| $body:expr) => {{
        let n: &BigUint = $n;
        if n.bits().div_ceil(64) <= MONTGOMERY_MAX_LIMBS as u64 {
            let $r = &mut Montgomery::new(n);
            $body
        } else {
            let $r = &mut Plain::new(n);
            $body
        }
    }};
}

/// Baillie-PSW on any n; meant for n that already survived trial division.
pub(super) fn is_bpsw_probable_prime(n: &BigUint, cancel: &AtomicBool) -> Result<bool, Cancelled> {
    if let Some(verdict) = trivial_verdict(n) {
        return Ok(verdict);
    }
    // Miller-Rabin first: it costs less than half as much as the Lucas test and rejects nearly
    // every composite that gets this far.
    with_residues!(n, |r| Ok(
        miller_rabin_in(r, n, 2, cancel)? && strong_lucas_in(r, n, cancel)?
    ))
}

fn poll(cancel: &AtomicBool) -> Result<(), Cancelled> {
    // Relaxed is enough: the flag publishes no other data, and we only need to see it soon.
    if cancel.load(Ordering::Relaxed) {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

/// The answer for the inputs both tests cannot run on: they need n odd and at least 3.
fn trivial_verdict(n: &BigUint) -> Option<bool> {
    (n.is_even() || n.is_one()).then(|| n.to_u8() == Some(2))
}

/// Writes m = odd * 2^s; m must be nonzero for `odd` to be odd.
fn split_power_of_two(m: &BigUint) -> (BigUint, u64) {
    let s = m.trailing_zeros().unwrap_or(0);
    (m >> s, s)
}

/// Strong probable-prime test to `base`: true for every prime and for the strong pseudoprimes to
/// that base. A base divisible by n carries no information, so it answers true. (Baillie-PSW
/// itself calls `miller_rabin_in`, sharing one set of residues with the Lucas test.)
#[cfg(test)]
pub(crate) fn miller_rabin(n: &BigUint, base: u64, cancel: &AtomicBool) -> Result<bool, Cancelled> {
    if let Some(verdict) = trivial_verdict(n) {
        return Ok(verdict);
    }
    with_residues!(n, |r| miller_rabin_in(r, n, base, cancel))
}

/// [`miller_rabin`] for odd n >= 3, polling `cancel` before every squaring.
fn miller_rabin_in<R: Residues>(
    r: &mut R,
    n: &BigUint,
    base: u64,
    cancel: &AtomicBool,
) -> Result<bool, Cancelled> {
    let base_residue = r.residue(base);
    if r.is_zero(&base_residue) {
        return Ok(true);
    }
    let one = r.residue(1);
    let mut minus_one = one.clone();
    r.neg(&mut minus_one);
    let (d, s) = split_power_of_two(&(n - 1u32));
    // base^d, left to right from the top bit of d (odd, so at least 1).
    poll(cancel)?;
    let mut x = base_residue.clone();
    for bit in (0..d.bits() - 1).rev() {
        poll(cancel)?;
        r.sqr(&mut x);
        if d.bit(bit) {
            if base == 2 {
                r.double(&mut x);
            } else {
                r.mul(&mut x, &base_residue);
            }
        }
    }
    if x == one || x == minus_one {
        return Ok(true);
    }
    for _ in 1..s {
        poll(cancel)?;
        r.sqr(&mut x);
        if x == minus_one {
            return Ok(true);
        }
        if x == one {
            // A square root of 1 other than +-1 exists only modulo a composite.
            return Ok(false);
        }
    }
    Ok(false)
}

/// Strong Lucas probable-prime test with Selfridge's method A: P = 1, Q = (1 - D) / 4, D the
/// first of 5, -7, 9, -11, ... with Jacobi(D/n) = -1. True for every prime and for the strong
/// Lucas pseudoprimes.
#[cfg(test)]
pub(crate) fn strong_lucas(n: &BigUint, cancel: &AtomicBool) -> Result<bool, Cancelled> {
    if let Some(verdict) = trivial_verdict(n) {
        return Ok(verdict);
    }
    with_residues!(n, |r| strong_lucas_in(r, n, cancel))
}

/// [`strong_lucas`] for odd n >= 3, polling `cancel` before every doubling step.
fn strong_lucas_in<R: Residues>(
    r: &mut R,
    n: &BigUint,
    cancel: &AtomicBool,
) -> Result<bool, Cancelled> {
    // Jacobi(D/n) is never -1 for a square n, so the search for D would not end.
    if is_perfect_square(n) {
        return Ok(false);
    }
    let d = match selfridge_d(n) {
        Selfridge::Parameter(d) => d,
        Selfridge::Decided(verdict) => return Ok(verdict),
    };
    let q = (1 - d) / 4;
    // n + 1 = k 2^s with k odd: n passes if U_k = 0 or V_(k 2^j) = 0 for some 0 <= j < s.
    let (k, s) = split_power_of_two(&(n + 1u32));
    let LucasTerm {
        mut v,
        v_next,
        mut q_k,
    } = lucas_ladder(r, q, &k, cancel)?;
    // D U_k = 2 V_(k+1) - P V_k, and D is a unit modulo n (Jacobi(D/n) = -1), so U_k = 0 exactly
    // when 2 V_(k+1) = V_k.
    let mut twice_v_next = v_next;
    r.double(&mut twice_v_next);
    if twice_v_next == v || r.is_zero(&v) {
        return Ok(true);
    }
    let mut twice_q_k = q_k.clone();
    for _ in 1..s {
        poll(cancel)?;
        // V_2k = V_k^2 - 2 Q^k.
        twice_q_k.clone_from(&q_k);
        r.double(&mut twice_q_k);
        r.sqr(&mut v);
        r.sub(&mut v, &twice_q_k);
        if r.is_zero(&v) {
            return Ok(true);
        }
        r.sqr(&mut q_k);
    }
    Ok(false)
}

enum Selfridge {
    Parameter(i64),
    /// Some D shares a factor with n, which settles the question without a Lucas test.
    Decided(bool),
}

/// Callers must rule out perfect squares, for which this would never return.
fn selfridge_d(n: &BigUint) -> Selfridge {
    let mut magnitude: i64 = 5;
    loop {
        let d = if magnitude % 4 == 1 {
            magnitude
        } else {
            -magnitude
        };
        match jacobi(d, n) {
            -1 => return Selfridge::Parameter(d),
            // n shares a factor with |D|. A prime n >= 5 first shares one at magnitude n; a
            // composite n meets one of its factors below itself first (3 at magnitude 9, and
            // n = 9 was excluded as a square), so n is prime exactly when it equals |D|.
            0 => return Selfridge::Decided(n.to_i64() == Some(magnitude)),
            _ => magnitude += 2,
        }
    }
}

/// V_k, V_(k+1) and Q^k modulo n, for one index k, of the Lucas sequences with P = 1.
struct LucasTerm<E> {
    v: E,
    v_next: E,
    q_k: E,
}

/// The V-only Lucas ladder with P = 1 over the bits of k, from (V_0, V_1, Q^0) = (2, 1, 1):
/// V_2j = V_j^2 - 2 Q^j, V_(2j+1) = V_j V_(j+1) - Q^j, V_(2j+2) = V_(j+1)^2 - 2 Q^(j+1).
/// Two products and one square of Q^j per bit; with Q = -1 (D = 5, half of all primes) the
/// powers of Q are signs and cost nothing.
fn lucas_ladder<R: Residues>(
    r: &mut R,
    q: i64,
    k: &BigUint,
    cancel: &AtomicBool,
) -> Result<LucasTerm<R::Elem>, Cancelled> {
    let one = r.residue(1);
    let mut minus_one = one.clone();
    r.neg(&mut minus_one);
    let mut v = r.residue(2);
    let mut v_next = one.clone();
    let mut q_k = one.clone();
    // Reused temporaries: clone_from keeps their buffers.
    let mut odd = one.clone();
    let mut twice_q = one.clone();
    for bit in (0..k.bits()).rev() {
        poll(cancel)?;
        // j -> 2j + 1 is needed either way: V_(2j+1) = V_j V_(j+1) - Q^j.
        odd.clone_from(&v);
        r.mul(&mut odd, &v_next);
        r.sub(&mut odd, &q_k);
        let set = k.bit(bit);
        twice_q.clone_from(&q_k);
        if set {
            // (V_(2j+1), V_(2j+2)), with V_(2j+2) = V_(j+1)^2 - 2 Q^(j+1).
            r.mul_small(&mut twice_q, 2 * q);
            r.sqr(&mut v_next);
            r.sub(&mut v_next, &twice_q);
            std::mem::swap(&mut v, &mut odd);
        } else {
            // (V_2j, V_(2j+1)), with V_2j = V_j^2 - 2 Q^j.
            r.double(&mut twice_q);
            r.sqr(&mut v);
            r.sub(&mut v, &twice_q);
            std::mem::swap(&mut v_next, &mut odd);
        }
        // Q^2j or Q^(2j+1).
        if q == -1 {
            q_k.clone_from(if set { &minus_one } else { &one });
        } else {
            r.sqr(&mut q_k);
            if set {
                r.mul_small(&mut q_k, q);
            }
        }
    }
    Ok(LucasTerm { v, v_next, q_k })
}

/// Jacobi symbol (a/n) for odd n.
pub(crate) fn jacobi(a: i64, n: &BigUint) -> i32 {
    let n_mod_8 = rem_u64(n, 8);
    let mut sign = 1;
    // (-1/n) = -1 exactly when n = 3 mod 4.
    if a < 0 && n_mod_8 % 4 == 3 {
        sign = -sign;
    }
    let a = a.unsigned_abs();
    if a == 0 {
        return i32::from(n.is_one());
    }
    let twos = a.trailing_zeros();
    let odd = a >> twos;
    // (2/n) = -1 exactly when n = 3 or 5 mod 8.
    if twos % 2 == 1 && matches!(n_mod_8, 3 | 5) {
        sign = -sign;
    }
    // Reciprocity swaps the roles so the rest is word-sized; when `odd` and n share a factor both
    // symbols are 0 and the sign does not matter.
    if odd % 4 == 3 && n_mod_8 % 4 == 3 {
        sign = -sign;
    }
    sign * jacobi_u64(rem_u64(n, odd), odd)
}

/// Jacobi symbol (a/n) for odd n.
fn jacobi_u64(mut a: u64, mut n: u64) -> i32 {
    let mut sign = 1;
    a %= n;
    while a != 0 {
        let twos = a.trailing_zeros();
        a >>= twos;
        if twos % 2 == 1 && matches!(n % 8, 3 | 5) {
            sign = -sign;
        }
        if a % 4 == 3 && n % 4 == 3 {
            sign = -sign;
        }
        std::mem::swap(&mut a, &mut n);
        a %= n;
    }
    if n == 1 {
        sign
    } else {
        0
    }
}

/// Bit r is set exactly when r is a square modulo 64.
const SQUARES_MOD_64: u64 = {
    let mut mask = 0;
    let mut r = 0;
    while r < 64 {
        mask |= 1 << (r * r % 64);
        r += 1;
    }
    mask
};

pub(crate) fn is_perfect_square(n: &BigUint) -> bool {
    // Only 12 of the 64 residues mod 64 are squares, so most non-squares skip the square root.
    if (SQUARES_MOD_64 >> rem_u64(n, 64)) & 1 == 0 {
        return false;
    }
    let root = n.sqrt();
    &root * &root == *n
}

#[cfg(test)]
mod tests {
    use num_traits::Zero;

    use super::super::small::is_prime_u64;
    use super::*;

    /// sympy: every odd composite below 100,000 with `mr(n, [2])` true.
    const SPSP2_BELOW_100_000: [u64; 16] = [
        2047, 3277, 4033, 4681, 8321, 15841, 29341, 42799, 49141, 52633, 65281, 74665, 80581,
        85489, 88357, 90751,
    ];

    /// sympy: every odd composite below 100,000 with `is_strong_lucas_prp(n)` true.
    const SLPSP_BELOW_100_000: [u64; 12] = [
        5459, 5777, 10877, 16109, 18971, 22499, 24569, 25199, 40309, 58519, 75077, 97439,
    ];

    fn idle() -> AtomicBool {
        AtomicBool::new(false)
    }

    fn mersenne(exponent: u32) -> BigUint {
        (BigUint::one() << exponent) - 1u32
    }

    #[test]
    fn jacobi_known_values() {
        // sympy.jacobi_symbol
        let cases = [
            (1001, 9907, -1),
            (19, 45, 1),
            (8, 21, -1),
            (5, 21, 1),
            (-7, 15, 1),
            (-1, 7, -1),
            (-1, 13, 1),
            (2, 7, 1),
            (2, 3, -1),
            (30, 59, -1),
            (-30, 59, 1),
            (0, 1, 1),
            (0, 3, 0),
            (5, 1, 1),
            (-11, 1, 1),
        ];
        for (a, n, expected) in cases {
            assert_eq!(jacobi(a, &BigUint::from(n as u64)), expected, "({a}/{n})");
        }
    }

    #[test]
    fn jacobi_matches_euler_criterion_for_odd_primes() {
        for p in (3u64..2000).filter(|&p| is_prime_u64(p)) {
            let big_p = BigUint::from(p);
            for a in -60i64..=60 {
                let residue = BigUint::from(a.rem_euclid(p as i64) as u64);
                let euler = residue.modpow(&BigUint::from((p - 1) / 2), &big_p);
                let expected = if euler.is_zero() {
                    0
                } else if euler.is_one() {
                    1
                } else {
                    -1
                };
                assert_eq!(jacobi(a, &big_p), expected, "({a}/{p})");
            }
        }
    }

    #[test]
    fn jacobi_is_multiplicative_in_the_modulus() {
        for m in (1u64..80).step_by(2) {
            for k in (1u64..80).step_by(2) {
                for a in -40i64..=40 {
                    let product = jacobi(a, &BigUint::from(m * k));
                    let factors = jacobi(a, &BigUint::from(m)) * jacobi(a, &BigUint::from(k));
                    assert_eq!(product, factors, "({a}/{m}*{k})");
                }
            }
        }
    }

    #[test]
    fn jacobi_on_a_big_modulus() {
        // sympy.jacobi_symbol(d, 2^127 - 1)
        let m = mersenne(127);
        let cases = [
            (5, -1),
            (-7, 1),
            (9, 1),
            (-11, -1),
            (13, 1),
            (-15, -1),
            (17, 1),
        ];
        for (d, expected) in cases {
            assert_eq!(jacobi(d, &m), expected, "({d}/M127)");
        }
    }

    #[test]
    fn perfect_squares() {
        for n in 0u64..20_000 {
            let expected = (0..=n).take_while(|r| r * r <= n).any(|r| r * r == n);
            assert_eq!(is_perfect_square(&BigUint::from(n)), expected, "n = {n}");
        }
        for root in [
            (BigUint::one() << 64u32) + 13u32,
            mersenne(127),
            mersenne(1279),
        ] {
            let square = &root * &root;
            assert!(is_perfect_square(&square));
            assert!(!is_perfect_square(&(&square + 1u32)));
            assert!(!is_perfect_square(&(&square - 1u32)));
        }
        assert!(is_perfect_square(&(BigUint::one() << 4000u32)));
        assert!(!is_perfect_square(&(BigUint::one() << 4001u32)));
    }

    #[test]
    fn lucas_terms_follow_the_recurrence() {
        // Any odd modulus works here: the ladder must reproduce V_k+1 = P V_k - Q V_k-1 with
        // P = 1, Q^k, and U_k through D U_k = 2 V_k+1 - V_k.
        let n_u64: u64 = 1_000_003 * 1_000_033;
        let n = BigUint::from(n_u64);
        let modulus = i128::from(n_u64);
        let reduce = |x: i128| BigUint::from(x.rem_euclid(modulus) as u64);
        for d in [5i64, -7, 9, -11, 13, -15, 17] {
            let q = (1 - d) / 4;
            let (mut u, mut v, mut q_k) = ((0i128, 1i128), (2i128, 1i128), i128::from(q));
            for k in 1u64..300 {
                let k_big = BigUint::from(k);
                let next_v = (v.1 - i128::from(q) * v.0).rem_euclid(modulus);
                let terms = [
                    ladder_values(&mut Montgomery::new(&n), q, &k_big),
                    ladder_values(&mut Plain::new(&n), q, &k_big),
                ];
                for (engine, (got_v, got_v_next, got_q_k)) in
                    ["montgomery", "plain"].iter().zip(terms)
                {
                    assert_eq!(got_v, reduce(v.1), "V_{k}, D = {d}, {engine}");
                    assert_eq!(got_v_next, reduce(next_v), "V_{}, D = {d}, {engine}", k + 1);
                    assert_eq!(got_q_k, reduce(q_k), "Q^{k}, D = {d}, {engine}");
                    let d_u = (2 * i128::from(got_v_next.to_u64().unwrap_or_default())
                        - i128::from(got_v.to_u64().unwrap_or_default()))
                    .rem_euclid(modulus);
                    assert_eq!(
                        reduce(d_u),
                        reduce(i128::from(d) * u.1),
                        "D U_{k}, D = {d}, {engine}"
                    );
                }
                let q = i128::from(q);
                u = (u.1, (u.1 - q * u.0).rem_euclid(modulus));
                v = (v.1, next_v);
                q_k = (q_k * q).rem_euclid(modulus);
            }
        }
    }

    /// (V_k, V_k+1, Q^k) as integers.
    fn ladder_values<R: Residues>(r: &mut R, q: i64, k: &BigUint) -> (BigUint, BigUint, BigUint) {
        let Ok(term) = lucas_ladder(r, q, k, &idle()) else {
            panic!("cancelled although nobody set the flag");
        };
        (
            r.to_biguint(&term.v),
            r.to_biguint(&term.v_next),
            r.to_biguint(&term.q_k),
        )
    }

    #[test]
    fn both_engines_give_the_same_verdicts() {
        // Primes, base-2 strong pseudoprimes (composite Mersenne numbers 2^p - 1 with p prime),
        // Lucas pseudoprimes and Carmichael numbers.
        let mut numbers: Vec<BigUint> = SPSP2_BELOW_100_000
            .iter()
            .chain(&SLPSP_BELOW_100_000)
            .chain(&[561, 1105, 1729, 7919, 65_537, 4_294_967_291])
            .map(|&n| BigUint::from(n))
            .collect();
        for p in [61u32, 67, 89, 101, 107, 127, 521, 523, 607, 1061, 1279] {
            numbers.push(mersenne(p));
        }
        numbers.push(mersenne(4253)); // prime
                                      // Limb boundaries, where carries and the final subtraction of a reduction bite.
        for bits in [128u32, 1024, 2048] {
            numbers.push((BigUint::one() << bits) + 1u32);
            numbers.push((BigUint::one() << bits) - 3u32);
        }
        for n in numbers {
            let expected_mr = miller_rabin_in(&mut Plain::new(&n), &n, 2, &idle());
            let expected_lucas = strong_lucas_in(&mut Plain::new(&n), &n, &idle());
            let mut monty = Montgomery::new(&n);
            assert_eq!(
                miller_rabin_in(&mut monty, &n, 2, &idle()),
                expected_mr,
                "n = {n}"
            );
            assert_eq!(
                miller_rabin_in(&mut monty, &n, 3, &idle()),
                miller_rabin_in(&mut Plain::new(&n), &n, 3, &idle()),
                "base 3, n = {n}"
            );
            assert_eq!(
                strong_lucas_in(&mut monty, &n, &idle()),
                expected_lucas,
                "n = {n}"
            );
        }
    }

    #[test]
    fn miller_rabin_base_2_below_100_000() {
        for n in (3u64..100_000).step_by(2) {
            let expected = is_prime_u64(n) || SPSP2_BELOW_100_000.contains(&n);
            assert_eq!(
                miller_rabin(&BigUint::from(n), 2, &idle()),
                Ok(expected),
                "n = {n}"
            );
        }
    }

    #[test]
    fn strong_lucas_below_100_000() {
        for n in (3u64..100_000).step_by(2) {
            let expected = is_prime_u64(n) || SLPSP_BELOW_100_000.contains(&n);
            assert_eq!(
                strong_lucas(&BigUint::from(n), &idle()),
                Ok(expected),
                "n = {n}"
            );
        }
    }

    #[test]
    fn bpsw_agrees_with_u64_oracle_below_100_000() {
        for n in 0u64..100_000 {
            assert_eq!(
                is_bpsw_probable_prime(&BigUint::from(n), &idle()),
                Ok(is_prime_u64(n)),
                "n = {n}"
            );
        }
    }

    #[test]
    fn strong_pseudoprimes_to_base_2_fail_the_lucas_test() {
        for n in [2047u64, 3277, 4033, 4681, 8321] {
            let n = BigUint::from(n);
            assert_eq!(miller_rabin(&n, 2, &idle()), Ok(true), "n = {n}");
            assert_eq!(strong_lucas(&n, &idle()), Ok(false), "n = {n}");
            assert_eq!(is_bpsw_probable_prime(&n, &idle()), Ok(false), "n = {n}");
        }
    }

    #[test]
    fn strong_lucas_pseudoprimes_fail_miller_rabin() {
        let vectors = [
            5459u64, 5777, 10877, 16109, 18971, 22499, 24569, 25199, 40309, 58519,
        ];
        for n in vectors {
            let n = BigUint::from(n);
            assert_eq!(strong_lucas(&n, &idle()), Ok(true), "n = {n}");
            assert_eq!(miller_rabin(&n, 2, &idle()), Ok(false), "n = {n}");
            assert_eq!(is_bpsw_probable_prime(&n, &idle()), Ok(false), "n = {n}");
        }
    }

    #[test]
    fn big_strong_pseudoprime_to_many_bases_fails_the_lucas_test() {
        // sympy: strong pseudoprime to every base from 2 to 41.
        let n = BigUint::from(3_317_044_064_679_887_385_961_981u128);
        assert_eq!(miller_rabin(&n, 2, &idle()), Ok(true));
        assert_eq!(miller_rabin(&n, 41, &idle()), Ok(true));
        assert_eq!(strong_lucas(&n, &idle()), Ok(false));
    }

    #[test]
    fn big_primes_pass_both_tests() {
        let primes = [
            mersenne(521),
            (BigUint::one() << 128u32) + 51u32,
            (BigUint::one() << 64u32) + 13u32,
        ];
        for p in primes {
            assert_eq!(miller_rabin(&p, 2, &idle()), Ok(true), "p = {p}");
            assert_eq!(miller_rabin(&p, 3, &idle()), Ok(true), "p = {p}");
            assert_eq!(strong_lucas(&p, &idle()), Ok(true), "p = {p}");
        }
    }

    #[test]
    fn base_divisible_by_n_proves_nothing() {
        assert_eq!(miller_rabin(&BigUint::from(3u32), 3, &idle()), Ok(true));
        assert_eq!(miller_rabin(&BigUint::from(7u32), 14, &idle()), Ok(true));
        // 5^3 = 0 mod 25 must not be mistaken for a useless base.
        assert_eq!(miller_rabin(&BigUint::from(25u32), 5, &idle()), Ok(false));
    }

    #[test]
    fn degenerate_inputs() {
        for (n, expected) in [(0u32, false), (1, false), (2, true), (4, false), (9, false)] {
            let n = BigUint::from(n);
            assert_eq!(miller_rabin(&n, 2, &idle()), Ok(expected), "n = {n}");
            assert_eq!(strong_lucas(&n, &idle()), Ok(expected), "n = {n}");
        }
    }

    #[test]
    fn both_tests_stop_when_cancelled() {
        let cancelled = AtomicBool::new(true);
        let p = mersenne(521);
        assert_eq!(miller_rabin(&p, 2, &cancelled), Err(Cancelled));
        assert_eq!(strong_lucas(&p, &cancelled), Err(Cancelled));
        assert_eq!(is_bpsw_probable_prime(&p, &cancelled), Err(Cancelled));
    }
}
