//! primed: a supervised, journaled primality-testing daemon in the spirit of Erlang/OTP.
//!
//! A root supervisor owns a load balancer and a pool of prime testers (ractor actors). Every
//! accepted job is journaled in sled before it is acknowledged, so crashes of a tester, of the
//! balancer or of the whole process lose nothing: the journal is replayed.

pub mod alarms;
pub mod area;
pub mod bench;
pub mod cli;
pub mod client;
pub mod codec;
pub mod config;
pub mod daemon;
pub mod events;
pub mod faults;
pub mod job;
pub mod journal;
pub mod logging;
pub mod monitor;
pub mod notify;
pub mod number;
pub mod outcomes;
pub mod pool;
pub mod primality;
pub mod protocol;
pub mod reload;
pub mod rng;
pub mod server;
pub mod stats;
pub mod supervision;
pub mod tree;

use std::future::Future;
use std::pin::Pin;

/// A boxed, owned future: what trait objects (journal backends, child specs) return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
