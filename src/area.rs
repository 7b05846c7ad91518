//! The area server of *Programming Erlang* chapter 23: a small service beside the tester pool,
//! supervised by the root on its own (one_for_one), so that its crashes can be watched being
//! restarted while the pool is never touched.
//!
//! The book's server crashes on a shape it cannot handle, on purpose. So does this one: a shape
//! it cannot measure (a negative or non-finite size) makes it fail ("let it crash"), the caller
//! is told why, and the root restarts it at once. Such a crash is blamed on the input, so a
//! burst of bad requests never uses up the root's restart intensity.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use serde::{Deserialize, Serialize};

use crate::supervision::{spawn_named, Blame, ChildExit, ChildSpec};
use crate::BoxFuture;

pub const AREA_SERVER: &str = "area_server";

/// The area server, whichever incarnation is alive.
pub const AREA_SERVER_ACTOR: crate::actors::Handle<AreaMsg> =
    crate::actors::Handle::new(AREA_SERVER);

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Rectangle { width: f64, height: f64 },
    Square { side: f64 },
    Circle { radius: f64 },
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Rectangle { width, height } => write!(f, "rectangle {width} {height}"),
            Shape::Square { side } => write!(f, "square {side}"),
            Shape::Circle { radius } => write!(f, "circle {radius}"),
        }
    }
}

impl Shape {
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Rectangle { .. } => "rectangle",
            Shape::Square { .. } => "square",
            Shape::Circle { .. } => "circle",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("a {shape}'s {dimension} must be a finite number, zero or more; got {value}")]
pub struct AreaError {
    shape: &'static str,
    dimension: &'static str,
    value: f64,
}

/// The area of `shape`; an error names the dimension that cannot be measured.
pub fn area(shape: &Shape) -> Result<f64, AreaError> {
    let check = |dimension, value: f64| {
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(AreaError {
                shape: shape.name(),
                dimension,
                value,
            })
        }
    };
    Ok(match *shape {
        Shape::Rectangle { width, height } => check("width", width)? * check("height", height)?,
        Shape::Square { side } => check("side", side)?.powi(2),
        Shape::Circle { radius } => std::f64::consts::PI * check("radius", radius)?.powi(2),
    })
}

pub struct AreaServer;

pub enum AreaMsg {
    Area(Shape, RpcReplyPort<f64>),
}

pub struct AreaArgs {
    /// Set just before a crash caused by a request, for the child spec's blame.
    bad_input: Arc<AtomicBool>,
}

impl Actor for AreaServer {
    type Msg = AreaMsg;
    type State = AreaArgs;
    type Arguments = AreaArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<AreaMsg>,
        args: AreaArgs,
    ) -> Result<AreaArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<AreaMsg>,
        AreaMsg::Area(shape, reply): AreaMsg,
        state: &mut AreaArgs,
    ) -> Result<(), ActorProcessingErr> {
        match area(&shape) {
            Ok(area) => {
                let _ = reply.send(area);
                Ok(())
            }
            Err(e) => {
                state.bad_input.store(true, Ordering::SeqCst);
                Err(e.into())
            }
        }
    }
}

#[derive(Default)]
pub struct AreaSpec {
    bad_input: Arc<AtomicBool>,
}

impl ChildSpec for AreaSpec {
    fn name(&self) -> String {
        AREA_SERVER.to_string()
    }

    fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>> {
        self.bad_input.store(false, Ordering::SeqCst);
        let args = AreaArgs {
            bad_input: Arc::clone(&self.bad_input),
        };
        Box::pin(spawn_named(
            AREA_SERVER.to_string(),
            AreaServer,
            args,
            supervisor,
        ))
    }

    fn exited(&self, exit: ChildExit<'_>) -> Blame {
        if exit.failed && self.bad_input.swap(false, Ordering::SeqCst) {
            Blame::Input
        } else {
            Blame::Child
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_of_the_books_shapes() {
        let rectangle = Shape::Rectangle {
            width: 3.0,
            height: 4.0,
        };
        assert_eq!(area(&rectangle), Ok(12.0));
        assert_eq!(area(&Shape::Square { side: 5.0 }), Ok(25.0));
        let circle = area(&Shape::Circle { radius: 1.0 }).unwrap();
        assert!((circle - std::f64::consts::PI).abs() < 1e-12);
        assert_eq!(area(&Shape::Square { side: 0.0 }), Ok(0.0));
    }

    #[test]
    fn unmeasurable_shapes_name_the_bad_dimension() {
        let bad = Shape::Rectangle {
            width: 2.0,
            height: -1.0,
        };
        let error = area(&bad).unwrap_err().to_string();
        assert_eq!(
            error,
            "a rectangle's height must be a finite number, zero or more; got -1"
        );
        let nan = area(&Shape::Circle { radius: f64::NAN }).unwrap_err();
        assert!(nan.to_string().contains("radius"), "{nan}");
        assert!(area(&Shape::Square {
            side: f64::INFINITY
        })
        .is_err());
    }
}
