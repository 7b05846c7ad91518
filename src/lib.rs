//! primed: a supervised, journaled primality-testing daemon in the spirit of Erlang/OTP.
//!
//! A root supervisor owns a load balancer and a pool of prime testers (ractor actors). Every
//! accepted job is journaled before it is acknowledged, so crashes of a tester, of the balancer
//! or of the whole process lose nothing: the journal is replayed.
//!
//! # Layout
//!
//! The command line and the daemon's life:
//! - [`cli`]: clap's command line, and dispatch to `serve`, `bench` or a client command.
//! - [`daemon`]: `primed serve`: startup order (journal, socket, tree) and clean shutdown.
//! - [`config`]: the embedded defaults, a file over them, validation, default paths.
//! - [`logging`]: structured logs to stderr or a rotated file; panics as log events.
//! - [`man`]: `primed man`, the manual page.
//! - [`notify`]: systemd's readiness protocol.
//! - [`reload`]: `primed reload` / SIGHUP: what can change live.
//! - [`retention`]: how long and how many finished jobs are kept (pure rules).
//!
//! The work:
//! - [`job`]: the vocabulary of jobs: ids, tasks, verdicts, results.
//! - [`jobs`]: a job's life in the daemon (intake, admission, acknowledgement, placement,
//!   finishing once, cancel, remote changes, and the pruning chore): the one way in for
//!   connections, operator requests, testers and the etcd follower.
//! - [`number`]: client input parsed into canonical numbers; a job's cost.
//! - [`primality`]: the one place that decides whether a number is prime.
//! - [`rng`]: a small seedable generator (make-prime candidates, bench mixes).
//! - [`area`]: the book's area server.
//!
//! Supervision and the actors:
//! - [`actors`]: typed handles to named actors; the one place a name is looked up.
//! - [`supervision`]: OTP strategies, restart intensity, backoff, the generic supervisor.
//! - [`tree`]: the supervision tree as child specs, and its live view.
//! - [`pool`]: the balancer, the testers and their load table; it implements
//!   [`jobs::Placement`].
//! - [`faults`]: fault injection for tests.
//! - [`stats`]: counters that outlive the actors they count.
//! - [`outcomes`]: delivering durable answers to the clients waiting for them.
//!
//! Durability and what operators see:
//! - [`journal`]: the `Journal` trait (storage) and `Coordination` (which work this daemon may
//!   run); sled (with its mark and checks on open) and etcd.
//! - [`codec`]: the one bincode codec, decoding under a limit.
//! - [`event`]: one supervision event (plain data).
//! - [`events`]: the persistent event log and the restart-rate counters.
//! - [`alarms`]: the alarm registry and its rules; [`monitor`] takes the readings.
//!
//! The socket:
//! - [`protocol`]: the hello, frames and messages (and their JSON shapes).
//! - [`server`]: socket ownership and path safety, peer checks, connection limits,
//!   connections, operator requests.
//! - [`client`]: the CLI's client commands, their arguments and output.
//! - [`bench`]: `primed bench`, the load generator.
//!
//! The HTTP side:
//! - [`http`]: the HTTP/JSON API on a socket of its own (and optionally TCP with a token):
//!   the `/v1` endpoints over the same intake, the OpenAPI document, `/metrics`.
//! - [`metrics`]: the Prometheus instruments that the code paths bump.

pub mod actors;
pub mod alarms;
pub mod area;
pub mod bench;
pub mod cli;
pub mod client;
pub mod codec;
pub mod config;
pub mod daemon;
pub mod event;
pub mod events;
pub mod faults;
pub mod http;
pub mod job;
pub mod jobs;
pub mod journal;
pub mod logging;
pub mod man;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod number;
pub mod outcomes;
pub mod pool;
pub mod primality;
pub mod protocol;
pub mod reload;
pub mod retention;
pub mod rng;
pub mod server;
pub mod stats;
pub mod supervision;
pub mod tree;

use std::future::Future;
use std::pin::Pin;

/// A boxed, owned future: what trait objects (journal backends, child specs) return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
