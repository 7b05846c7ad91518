//! Primality benchmarks: the u64 path, Baillie-PSW on 1024- and 2048-bit primes (the worst case:
//! nothing exits early), and random odd composites (the common case: mostly trial division).

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use num_bigint::BigUint;
use num_traits::One;
use primed::primality::{is_prime_big, is_prime_u64};

/// Never set: the benchmarks measure complete tests.
static IDLE: AtomicBool = AtomicBool::new(false);

/// SplitMix64: a fixed seed gives the same inputs on every run and machine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Exactly `bits` bits long (top bit set) and odd, like a real candidate.
    fn odd_biguint(&mut self, bits: u64) -> BigUint {
        let words = bits.div_ceil(64);
        let mut n = (0..words).fold(BigUint::default(), |acc, _| (acc << 64u32) + self.next());
        n >>= words * 64 - bits;
        n.set_bit(bits - 1, true);
        n.set_bit(0, true);
        n
    }
}

/// 2^(bits-1) + offset, where the offset was chosen (sympy.nextprime) to make it prime.
fn known_prime(bits: u64, offset: u32) -> BigUint {
    let p = (BigUint::one() << (bits - 1)) + offset;
    assert_eq!(
        is_prime_big(&p, &IDLE),
        Ok(true),
        "2^{} + {offset}",
        bits - 1
    );
    p
}

fn odd_composites(rng: &mut SplitMix64, bits: u64, count: usize) -> Vec<BigUint> {
    std::iter::repeat_with(|| rng.odd_biguint(bits))
        .filter(|n| is_prime_big(n, &IDLE) == Ok(false))
        .take(count)
        .collect()
}

fn bench_u64(c: &mut Criterion) {
    let mut rng = SplitMix64(0x5EED);
    let inputs: Vec<u64> = (0..1000).map(|_| rng.next() | 1).collect();
    let mut group = c.benchmark_group("u64");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("random odd", |b| {
        b.iter(|| {
            inputs
                .iter()
                .filter(|&&n| is_prime_u64(black_box(n)))
                .count()
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("prime 2^64-59", |b| {
        b.iter(|| is_prime_u64(black_box(u64::MAX - 58)))
    });
    group.finish();
}

fn bench_primes(c: &mut Criterion) {
    // sympy: nextprime(2^1023) = 2^1023 + 1155, nextprime(2^2047) = 2^2047 + 1919.
    for (bits, offset) in [(1024, 1155), (2048, 1919)] {
        let p = known_prime(bits, offset);
        let mut group = c.benchmark_group(format!("{bits}-bit"));
        group.sample_size(20);
        group.bench_function("prime", |b| b.iter(|| is_prime_big(black_box(&p), &IDLE)));
        group.finish();
    }
}

fn bench_composites(c: &mut Criterion) {
    let mut rng = SplitMix64(0xC0FFEE);
    let mut group = c.benchmark_group("composites");
    group.sample_size(20);
    for bits in [1024, 2048] {
        let inputs = odd_composites(&mut rng, bits, 200);
        group.throughput(Throughput::Elements(inputs.len() as u64));
        group.bench_function(format!("random odd {bits}-bit"), |b| {
            b.iter(|| {
                inputs
                    .iter()
                    .filter(|n| is_prime_big(black_box(n), &IDLE) == Ok(true))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_u64, bench_primes, bench_composites);
criterion_main!(benches);
