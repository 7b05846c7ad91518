//! Montgomery arithmetic on fixed-width 64-bit limbs: the residue x is stored as x R mod n with
//! R = 2^(64 k) for a k-limb n, so a product needs a multiplication and a Montgomery reduction
//! (REDC: k rows of multiply-add, no division). Squaring computes each cross product once.
//! Elements are kept fully reduced, in [0, n).

use super::residues::Residues;
use num_bigint::BigUint;
use num_integer::Integer;

pub(super) struct Montgomery {
    /// n, least significant limb first; k = n.len() limbs, the top one nonzero.
    n: Vec<u64>,
    /// -n^-1 mod 2^64.
    n_neg_inv: u64,
    /// Room for a double-width product plus a carry limb.
    scratch: Vec<u64>,
    modulus: BigUint,
}

impl Montgomery {
    pub(super) fn new(n: &BigUint) -> Self {
        debug_assert!(n.is_odd() && *n >= BigUint::from(3u32));
        let limbs = n.to_u64_digits();
        let k = limbs.len();
        // Newton's iteration doubles the number of correct low bits: n0 * n0 = 1 mod 8 for odd
        // n0, so 3 -> 6 -> 12 -> 24 -> 48 -> 96 >= 64 bits.
        let n0 = limbs[0];
        let mut inv = n0;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n0.wrapping_mul(inv)));
        }
        debug_assert_eq!(n0.wrapping_mul(inv), 1);
        Montgomery {
            n: limbs,
            n_neg_inv: inv.wrapping_neg(),
            scratch: vec![0; 2 * k + 1],
            modulus: n.clone(),
        }
    }

    fn k(&self) -> usize {
        self.n.len()
    }

    /// out <- t / R mod n for t < n R, where t = scratch[..2k] and scratch[2k] == 0.
    fn redc_into(&mut self, out: &mut [u64]) {
        let k = self.k();
        let t = &mut self.scratch;
        let mut top = 0u64;
        for i in 0..k {
            // Adding m n makes limb i zero; the carry moves into limb i + k.
            let m = t[i].wrapping_mul(self.n_neg_inv);
            let carry = mul_add_row(&mut t[i..i + k], &self.n, m);
            let (sum, o1) = t[i + k].overflowing_add(carry);
            let (sum, o2) = sum.overflowing_add(top);
            t[i + k] = sum;
            top = u64::from(o1) + u64::from(o2);
        }
        // (t + M n) / R < (n R + n R) / R = 2n, so one subtraction of n at most.
        let (_, high) = t.split_at(k);
        out.copy_from_slice(&high[..k]);
        if top != 0 || !less_than(out, &self.n) {
            sub_in_place(out, &self.n);
        }
    }
}

impl Residues for Montgomery {
    type Elem = Vec<u64>;

    fn residue(&self, c: u64) -> Vec<u64> {
        let k = self.k();
        to_limbs(&((BigUint::from(c) << (64 * k)) % &self.modulus), k)
    }

    #[cfg(test)]
    fn to_biguint(&mut self, x: &Vec<u64>) -> BigUint {
        // x R * 1 / R = x: a product with the plain integer 1.
        let mut plain_one = vec![0; self.k()];
        plain_one[0] = 1;
        let mut value = x.clone();
        self.mul(&mut value, &plain_one);
        BigUint::from_slice(
            &value
                .iter()
                .flat_map(|&w| [w as u32, (w >> 32) as u32])
                .collect::<Vec<u32>>(),
        )
    }

    fn is_zero(&self, x: &Vec<u64>) -> bool {
        x.iter().all(|&w| w == 0)
    }

    fn sqr(&mut self, x: &mut Vec<u64>) {
        let k = self.k();
        let t = &mut self.scratch;
        t.fill(0);
        // Cross products a_i a_j for i < j, each once.
        for i in 0..k {
            t[i + k] = mul_add_row(&mut t[2 * i + 1..i + k], &x[i + 1..], x[i]);
        }
        // Double them, then add the squares a_i^2 on the diagonal.
        let mut shifted_out = 0;
        for w in t[..2 * k].iter_mut() {
            let v = *w;
            *w = (v << 1) | shifted_out;
            shifted_out = v >> 63;
        }
        let mut carry = 0u64;
        for (pair, &a) in t.chunks_exact_mut(2).zip(x.iter()) {
            let square = u128::from(a) * u128::from(a) + u128::from(pair[0]) + u128::from(carry);
            pair[0] = square as u64;
            let (high, overflow) = pair[1].overflowing_add((square >> 64) as u64);
            pair[1] = high;
            carry = u64::from(overflow);
        }
        // x^2 < R^2, so the last carry is 0.
        self.redc_into(x);
    }

    fn mul(&mut self, x: &mut Vec<u64>, y: &Vec<u64>) {
        let k = self.k();
        let t = &mut self.scratch;
        t.fill(0);
        for (i, &a) in x.iter().enumerate() {
            t[i + k] = mul_add_row(&mut t[i..i + k], y, a);
        }
        self.redc_into(x);
    }

    fn add(&self, x: &mut Vec<u64>, y: &Vec<u64>) {
        let carry = add_in_place(x, y);
        if carry || !less_than(x, &self.n) {
            sub_in_place(x, &self.n);
        }
    }

    fn sub(&self, x: &mut Vec<u64>, y: &Vec<u64>) {
        if sub_in_place(x, y) {
            add_in_place(x, &self.n);
        }
    }

    fn double(&self, x: &mut Vec<u64>) {
        let mut shifted_out = 0;
        for w in x.iter_mut() {
            let v = *w;
            *w = (v << 1) | shifted_out;
            shifted_out = v >> 63;
        }
        if shifted_out != 0 || !less_than(x, &self.n) {
            sub_in_place(x, &self.n);
        }
    }

    fn neg(&self, x: &mut Vec<u64>) {
        if !self.is_zero(x) {
            let mut negated = self.n.clone();
            sub_in_place(&mut negated, x);
            *x = negated;
        }
    }

    fn mul_small(&self, x: &mut Vec<u64>, c: i64) {
        // Double-and-add over the bits of |c|: a few linear passes, since |c| is tiny.
        let magnitude = c.unsigned_abs();
        if magnitude == 0 {
            x.fill(0);
            return;
        }
        let base = x.clone();
        for bit in (0..magnitude.ilog2()).rev() {
            self.double(x);
            if (magnitude >> bit) & 1 == 1 {
                self.add(x, &base);
            }
        }
        if c < 0 {
            self.neg(x);
        }
    }
}

fn to_limbs(x: &BigUint, k: usize) -> Vec<u64> {
    let mut limbs = x.to_u64_digits();
    limbs.resize(k, 0);
    limbs
}

/// row <- row + b m over row.len() == b.len() limbs; returns the carry limb.
#[inline(always)]
fn mul_add_row(row: &mut [u64], b: &[u64], m: u64) -> u64 {
    let mut carry: u128 = 0;
    for (r, &b) in row.iter_mut().zip(b) {
        // (2^64 - 1)^2 + 2 (2^64 - 1) < 2^128: no overflow.
        carry += u128::from(*r) + u128::from(b) * u128::from(m);
        *r = carry as u64;
        carry >>= 64;
    }
    carry as u64
}

/// x <- x + y mod 2^(64 len); true if it carried out.
fn add_in_place(x: &mut [u64], y: &[u64]) -> bool {
    let mut carry = false;
    for (a, &b) in x.iter_mut().zip(y) {
        let (sum, o1) = a.overflowing_add(b);
        let (sum, o2) = sum.overflowing_add(u64::from(carry));
        *a = sum;
        carry = o1 || o2;
    }
    carry
}

/// x <- x - y mod 2^(64 len); true if it borrowed.
fn sub_in_place(x: &mut [u64], y: &[u64]) -> bool {
    let mut borrow = false;
    for (a, &b) in x.iter_mut().zip(y) {
        let (diff, b1) = a.overflowing_sub(b);
        let (diff, b2) = diff.overflowing_sub(u64::from(borrow));
        *a = diff;
        borrow = b1 || b2;
    }
    borrow
}

fn less_than(x: &[u64], y: &[u64]) -> bool {
    for (a, b) in x.iter().rev().zip(y.iter().rev()) {
        if a != b {
            return a < b;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use num_traits::{One, Zero};

    use super::super::residues::Plain;
    use super::*;

    /// SplitMix64, fixed seed.
    fn rng(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn random_below(state: &mut u64, n: &BigUint) -> BigUint {
        let words = n.bits().div_ceil(64) + 1;
        (0..words).fold(BigUint::zero(), |acc, _| (acc << 64u32) + rng(state)) % n
    }

    fn moduli(state: &mut u64) -> Vec<BigUint> {
        let mut moduli: Vec<BigUint> = [3u64, 5, 7, 0xFFFF_FFFF_FFFF_FFC5, u64::MAX]
            .into_iter()
            .map(BigUint::from)
            .collect();
        // Limb boundaries and near-powers of two, where carries and the final subtraction bite.
        for bits in [65u32, 127, 128, 129, 1024, 1025, 2048, 3000] {
            moduli.push((BigUint::one() << bits) - 1u32);
            moduli.push((BigUint::one() << (bits - 1)) + 1u32);
            let mut n = random_below(state, &(BigUint::one() << bits));
            n.set_bit(u64::from(bits) - 1, true);
            n.set_bit(0, true);
            moduli.push(n);
        }
        moduli
    }

    /// Every operation against the BigUint engine, on random and extreme residues.
    #[test]
    fn agrees_with_plain_biguint_arithmetic() {
        let mut state = 0x4D4F_4E54;
        for n in moduli(&mut state) {
            let mut monty = Montgomery::new(&n);
            let mut plain = Plain::new(&n);
            let extremes = [
                BigUint::zero(),
                BigUint::one(),
                &n - 1u32,
                &n - 2u32,
                &n >> 1,
            ];
            let randoms: Vec<BigUint> = (0..6).map(|_| random_below(&mut state, &n)).collect();
            let values: Vec<BigUint> = extremes.into_iter().chain(randoms).collect();
            let from = |monty: &mut Montgomery, v: &BigUint| {
                let mut x = monty.residue(0);
                // v R mod n, through the public operations only: v = sum of 64-bit digits.
                for digit in v.iter_u64_digits().rev() {
                    for _ in 0..64 {
                        monty.double(&mut x);
                    }
                    monty.add(&mut x, &monty.residue(digit));
                }
                x
            };
            for a in &values {
                let ma = from(&mut monty, a);
                assert_eq!(monty.to_biguint(&ma), *a, "round trip {a} mod {n}");
                let mut sq = ma.clone();
                monty.sqr(&mut sq);
                let mut expected = a.clone();
                plain.sqr(&mut expected);
                assert_eq!(monty.to_biguint(&sq), expected, "{a}^2 mod {n}");
                for c in [-13i64, -7, -1, 0, 1, 2, 3, 5, 1000] {
                    let mut x = ma.clone();
                    monty.mul_small(&mut x, c);
                    let mut expected = a.clone();
                    plain.mul_small(&mut expected, c);
                    assert_eq!(monty.to_biguint(&x), expected, "{c} * {a} mod {n}");
                }
                let mut x = ma.clone();
                monty.neg(&mut x);
                let mut expected = a.clone();
                plain.neg(&mut expected);
                assert_eq!(monty.to_biguint(&x), expected, "-{a} mod {n}");
                let mut x = ma.clone();
                monty.double(&mut x);
                let mut expected = a.clone();
                plain.double(&mut expected);
                assert_eq!(monty.to_biguint(&x), expected, "2 * {a} mod {n}");
                for b in &values {
                    let mb = from(&mut monty, b);
                    let mut x = ma.clone();
                    monty.mul(&mut x, &mb);
                    assert_eq!(monty.to_biguint(&x), a * b % &n, "{a} * {b} mod {n}");
                    let mut x = ma.clone();
                    monty.add(&mut x, &mb);
                    assert_eq!(monty.to_biguint(&x), (a + b) % &n, "{a} + {b} mod {n}");
                    let mut x = ma.clone();
                    monty.sub(&mut x, &mb);
                    assert_eq!(monty.to_biguint(&x), (a + &n - b) % &n, "{a} - {b} mod {n}");
                }
            }
            assert_eq!(monty.to_biguint(&monty.residue(1)), BigUint::one());
            assert_eq!(
                monty.to_biguint(&monty.residue(12_345)),
                plain.residue(12_345)
            );
        }
    }
}
