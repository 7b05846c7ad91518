//! Primality benchmarks: the u64 path, Baillie-PSW on 1024- and 2048-bit primes (the worst case:
//! nothing exits early), and random odd composites (the common case: mostly trial division).
//!
//! Every group that compares engines runs them side by side on the same inputs:
//! - u64: `primed` (our `is_prime_u64`) and `machine_prime` (the crate it calls: the baseline);
//! - big numbers: `pure_rust` (the default build's engine), and with `--features gmp` also
//!   `primed_gmp` (our `is_prime_big` on GMP, BigUint conversion included) and `gmp`
//!   (`mpz_probab_prime_p` on a ready-made GMP integer: the baseline).
//!
//! `cargo bench --bench primality` (pure Rust only), or
//! `cargo bench --features gmp --bench primality` for the comparison with GMP.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use num_bigint::BigUint;
use num_traits::One;
#[cfg(feature = "gmp")]
use primed::primality::gmp::REPS;
use primed::primality::{is_prime_big, is_prime_u64, make_prime, pure};
use primed::rng::SplitMix64;
#[cfg(feature = "gmp")]
use rug::{integer::IsPrime, Integer};

/// Never set: the benchmarks measure complete tests.
static IDLE: AtomicBool = AtomicBool::new(false);

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
    let mut rng = SplitMix64::new(0x5EED);
    let inputs: Vec<u64> = (0..1000).map(|_| rng.next_u64() | 1).collect();
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
    group.bench_function("machine_prime random odd", |b| {
        b.iter(|| {
            inputs
                .iter()
                .filter(|&&n| machine_prime::is_prime(black_box(n)))
                .count()
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("prime 2^64-59", |b| {
        b.iter(|| is_prime_u64(black_box(u64::MAX - 58)))
    });
    group.bench_function("machine_prime prime 2^64-59", |b| {
        b.iter(|| machine_prime::is_prime(black_box(u64::MAX - 58)))
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
    let mut rng = SplitMix64::new(0xC0FFEE);
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

/// The first prime at or after a seeded random `bits`-bit odd number, found by the pure-Rust
/// engine (so the input does not depend on the build).
fn seeded_prime(rng: &mut SplitMix64, bits: u64) -> BigUint {
    let mut n = rng.odd_biguint(bits);
    while pure::is_prime_big(&n, &IDLE) != Ok(true) {
        n += 2u32;
    }
    n
}

/// How many composites one iteration of a composite benchmark tests: a mix of early exits at
/// small primes, late ones, and the survivors that need Miller-Rabin.
const COMPOSITES_PER_ITERATION: usize = 64;

/// Each engine on the same inputs, in one group: GMP (with `--features gmp`) is the baseline.
fn bench_engines(c: &mut Criterion) {
    let mut rng = SplitMix64::new(0xB125_0001);
    for bits in [1024, 2048] {
        let prime = seeded_prime(&mut rng, bits);
        bench_engine_group(
            c,
            &format!("{bits}-bit prime"),
            std::slice::from_ref(&prime),
        );
        let composites: Vec<BigUint> = std::iter::repeat_with(|| rng.odd_biguint(bits))
            .filter(|n| pure::is_prime_big(n, &IDLE) == Ok(false))
            .take(COMPOSITES_PER_ITERATION)
            .collect();
        bench_engine_group(c, &format!("{bits}-bit odd composites"), &composites);
    }
}

/// One group: every engine tests all of `inputs` per iteration (throughput: numbers tested).
fn bench_engine_group(c: &mut Criterion, name: &str, inputs: &[BigUint]) {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("pure_rust", |b| {
        b.iter(|| {
            inputs
                .iter()
                .filter(|n| pure::is_prime_big(black_box(n), &IDLE) == Ok(true))
                .count()
        })
    });
    #[cfg(feature = "gmp")]
    {
        group.bench_function("primed_gmp", |b| {
            b.iter(|| {
                inputs
                    .iter()
                    .filter(|n| is_prime_big(black_box(n), &IDLE) == Ok(true))
                    .count()
            })
        });
        let integers: Vec<Integer> = inputs
            .iter()
            .map(primed::primality::gmp::to_integer)
            .collect();
        group.bench_function("gmp", |b| {
            b.iter(|| {
                integers
                    .iter()
                    .filter(|n| black_box(n).is_probably_prime(REPS) != IsPrime::No)
                    .count()
            })
        });
    }
    group.finish();
}

/// The book's make_prime: a uniformly random 309-digit (1024-bit) prime, per iteration.
fn bench_make_prime(c: &mut Criterion) {
    let mut group = c.benchmark_group("make_prime");
    group.sample_size(30);
    let mut rng = SplitMix64::new(0x5EED);
    group.bench_function("309_digits", |b| {
        b.iter(|| black_box(make_prime(309, &mut || rng.next_u64(), &IDLE)))
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_u64,
    bench_primes,
    bench_composites,
    bench_engines,
    bench_make_prime
);
criterion_main!(benches);
