//! OTP-style supervision on top of ractor's links: restart strategies, restart intensity and
//! restart backoff as plain functions, and one generic supervisor actor that applies them to a
//! list of child specs.

mod backoff;
mod intensity;
mod strategy;
mod supervisor;

pub use backoff::{Backoff, BackoffPolicy};
pub use intensity::{Intensity, RestartLog};
pub use strategy::Strategy;
pub use supervisor::{
    spawn_named, Blame, ChildExit, ChildSpec, ChildView, Children, Supervisor, SupervisorMsg,
    SupervisorSpec, SupervisorView,
};
