//! OTP-style supervision on top of ractor's links: restart strategies and restart intensity as
//! plain functions, and one generic supervisor actor that applies them to a list of child specs.

mod intensity;
mod strategy;
mod supervisor;

pub use intensity::{Intensity, RestartLog};
pub use strategy::Strategy;
pub use supervisor::{spawn_named, ChildSpec, Supervisor, SupervisorSpec};
