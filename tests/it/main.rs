//! The integration tests, in one test binary (one link of the crate, not one per file): each
//! module runs the real `primed` binary on a socket in a temp dir. `common` starts daemons and
//! holds the shared helpers; the etcd modules are compiled only with `--features etcd`.
//!
//! (`tests/decoding.rs` stays a binary of its own: it installs a counting global allocator.)

mod common;

mod alarms;
mod area;
mod bad_input;
mod bench;
mod chaos;
mod completions;
mod crashes;
mod damage;
mod disk_full;
mod etcd;
mod faults;
mod hostile;
mod http;
mod known_answers;
mod lifecycle;
mod prime;
mod progress;
mod recovery;
mod reload;
mod retention;
mod socket;
mod web;
