//! Typed handles to the daemon's named actors: the one place where an actor is looked up by
//! its name. A supervisor restarts a child under the same name, so a handle reaches whichever
//! incarnation is alive now, and says so when none is (it is being restarted).
//!
//! Each module that defines an actor's messages defines its handle beside them
//! (`pool::BALANCER`, `TesterId::handle`, `area::AREA_SERVER`, supervisors in `tree`): callers
//! name the handle, never the string.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, Message, RpcReplyPort};

/// The actor registered under `name`, whatever it runs.
pub fn cell(name: &str) -> Option<ActorCell> {
    ractor::registry::where_is(name)
}

/// The actor named `name`, which takes messages of type `M`.
pub struct Handle<M> {
    name: Cow<'static, str>,
    _messages: PhantomData<fn(M)>,
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Handle {
            name: self.name.clone(),
            _messages: PhantomData,
        }
    }
}

impl<M: Message> Handle<M> {
    pub const fn new(name: &'static str) -> Handle<M> {
        Handle {
            name: Cow::Borrowed(name),
            _messages: PhantomData,
        }
    }

    pub fn named(name: String) -> Handle<M> {
        Handle {
            name: Cow::Owned(name),
            _messages: PhantomData,
        }
    }

    /// The incarnation alive now, if any.
    pub fn get(&self) -> Option<ActorRef<M>> {
        cell(&self.name).map(ActorRef::from)
    }

    pub fn is_running(&self) -> bool {
        cell(&self.name).is_some()
    }

    /// Sends `message` to the incarnation alive now; false if there is none (or it just died).
    pub fn send(&self, message: M) -> bool {
        self.get()
            .is_some_and(|actor| actor.send_message(message).is_ok())
    }

    /// Asks and waits up to `timeout` for the answer; `None` if the actor is down, dies while
    /// answering, or is late.
    pub async fn call<T: Send + 'static>(
        &self,
        message: impl FnOnce(RpcReplyPort<T>) -> M,
        timeout: Duration,
    ) -> Option<T> {
        match self.get()?.call(message, Some(timeout)).await {
            Ok(CallResult::Success(answer)) => Some(answer),
            _ => None,
        }
    }
}
