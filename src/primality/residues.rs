//! Arithmetic modulo an odd n >= 3, behind one trait so that Baillie-PSW is written once and runs
//! on whichever representation is faster for the size of n:
//!
//! - [`Montgomery`](super::montgomery::Montgomery): fixed-width limbs, Montgomery reduction and a
//!   dedicated squaring, no allocation per operation. Its schoolbook products are quadratic, so
//!   it is the faster one up to a few thousand bits.
//! - [`Plain`]: `BigUint` products and remainders. num-bigint multiplies with Karatsuba and
//!   Toom-3, which wins for the largest inputs.

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::Zero;

/// The residues modulo one odd n >= 3. Every element is reduced (in [0, n) in its own
/// representation), so equality of elements is equality of residues.
pub(super) trait Residues {
    type Elem: Clone + PartialEq;

    /// c mod n.
    fn residue(&self, c: u64) -> Self::Elem;
    /// The residue as an integer in [0, n).
    #[cfg(test)]
    fn to_biguint(&mut self, x: &Self::Elem) -> BigUint;
    fn is_zero(&self, x: &Self::Elem) -> bool;
    /// x <- x^2.
    fn sqr(&mut self, x: &mut Self::Elem);
    /// x <- x * y.
    fn mul(&mut self, x: &mut Self::Elem, y: &Self::Elem);
    /// x <- x + y.
    fn add(&self, x: &mut Self::Elem, y: &Self::Elem);
    /// x <- x - y.
    fn sub(&self, x: &mut Self::Elem, y: &Self::Elem);
    /// x <- 2x.
    fn double(&self, x: &mut Self::Elem);
    /// x <- -x.
    fn neg(&self, x: &mut Self::Elem);
    /// x <- c x for a small c (Lucas parameters: a few units, never more than a few thousand).
    fn mul_small(&self, x: &mut Self::Elem, c: i64);
}

/// Residues as `BigUint`s in [0, n).
pub(super) struct Plain<'a> {
    n: &'a BigUint,
}

impl<'a> Plain<'a> {
    pub(super) fn new(n: &'a BigUint) -> Self {
        debug_assert!(n.is_odd() && *n >= BigUint::from(3u32));
        Plain { n }
    }
}

impl Residues for Plain<'_> {
    type Elem = BigUint;

    fn residue(&self, c: u64) -> BigUint {
        BigUint::from(c) % self.n
    }

    #[cfg(test)]
    fn to_biguint(&mut self, x: &BigUint) -> BigUint {
        x.clone()
    }

    fn is_zero(&self, x: &BigUint) -> bool {
        x.is_zero()
    }

    fn sqr(&mut self, x: &mut BigUint) {
        *x = &*x * &*x % self.n;
    }

    fn mul(&mut self, x: &mut BigUint, y: &BigUint) {
        *x = &*x * y % self.n;
    }

    fn add(&self, x: &mut BigUint, y: &BigUint) {
        *x += y;
        if *x >= *self.n {
            *x -= self.n;
        }
    }

    fn sub(&self, x: &mut BigUint, y: &BigUint) {
        if *x < *y {
            *x += self.n;
        }
        *x -= y;
    }

    fn double(&self, x: &mut BigUint) {
        *x <<= 1u32;
        if *x >= *self.n {
            *x -= self.n;
        }
    }

    fn neg(&self, x: &mut BigUint) {
        if !x.is_zero() {
            *x = self.n - &*x;
        }
    }

    fn mul_small(&self, x: &mut BigUint, c: i64) {
        *x = &*x * c.unsigned_abs() % self.n;
        if c < 0 {
            self.neg(x);
        }
    }
}
