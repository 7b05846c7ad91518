//! Delivery of answers to the clients waiting for them. Testers publish each result with its
//! journal ticket; one task waits until the result is durable and then wakes every waiter, so
//! a client is never told an answer the journal could still forget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::job::{JobId, JobResult};
use crate::journal::{Journal, Ticket};
use crate::protocol::{Report, Response};

/// What is pushed to a connection's writer: a response, and how many of the connection's
/// in-flight permits writing it frees (each job a connection waits on holds one).
#[derive(Debug)]
pub struct Delivery {
    pub response: Response,
    pub release: u32,
}

/// Per-connection channel that answers are pushed into.
pub type Waiter = mpsc::UnboundedSender<Delivery>;

/// Most results delivered after one durability wait.
const DELIVERY_BATCH: usize = 1024;

#[derive(Default)]
struct Waiters(Mutex<HashMap<JobId, Vec<Waiter>>>);

impl Waiters {
    fn deliver(&self, result: &JobResult) {
        let waiting = {
            let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            map.remove(&result.id)
        };
        let report = Report::from(result);
        for waiter in waiting.into_iter().flatten() {
            // A closed connection has no one left to tell.
            let _ = waiter.send(Delivery {
                response: Response::Done(report.clone()),
                release: 1,
            });
        }
    }
}

/// What the delivery task is asked to do, in order.
enum Item {
    Result(Ticket, JobResult),
    /// Answer once everything published before has been delivered.
    Settle(oneshot::Sender<()>),
}

pub struct Outcomes {
    waiters: Arc<Waiters>,
    published: mpsc::UnboundedSender<Item>,
}

impl Outcomes {
    /// Starts the delivery task; it ends when the `Outcomes` is dropped.
    pub fn start(journal: Arc<dyn Journal>) -> Arc<Self> {
        let waiters = Arc::new(Waiters::default());
        let (published, queue) = mpsc::unbounded_channel();
        tokio::spawn(deliver(journal, Arc::clone(&waiters), queue));
        Arc::new(Self { waiters, published })
    }

    /// Registers `waiter` for the answers to `ids`. Register before looking the result up (or
    /// before dispatching the job), so that no answer can slip between the two.
    pub fn watch(&self, ids: &[JobId], waiter: &Waiter) {
        let mut map = self
            .waiters
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &id in ids {
            map.entry(id).or_default().push(waiter.clone());
        }
    }

    /// Withdraws `waiter` from `id`; false if it was no longer registered (the answer is
    /// already on its way to it).
    pub fn unwatch(&self, id: JobId, waiter: &Waiter) -> bool {
        let mut map = self
            .waiters
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(list) = map.get_mut(&id) else {
            return false;
        };
        let position = list.iter().position(|w| w.same_channel(waiter));
        let removed = position.map(|i| list.swap_remove(i)).is_some();
        if list.is_empty() {
            map.remove(&id);
        }
        removed
    }

    pub fn publish(&self, ticket: Ticket, result: JobResult) {
        let _ = self.published.send(Item::Result(ticket, result));
    }

    /// For shutdown: delivers everything published so far, then forgets every waiter, so
    /// that connections can finish writing and close.
    pub async fn close(&self) {
        let (settled, done) = oneshot::channel();
        if self.published.send(Item::Settle(settled)).is_ok() {
            let _ = done.await;
        }
        self.waiters
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

async fn deliver(
    journal: Arc<dyn Journal>,
    waiters: Arc<Waiters>,
    mut queue: mpsc::UnboundedReceiver<Item>,
) {
    let mut batch = Vec::with_capacity(DELIVERY_BATCH);
    while queue.recv_many(&mut batch, DELIVERY_BATCH).await > 0 {
        let newest = batch
            .iter()
            .filter_map(|item| match item {
                Item::Result(ticket, _) => Some(*ticket),
                Item::Settle(_) => None,
            })
            .max()
            .unwrap_or(0);
        if let Err(e) = journal.durable(newest).await {
            // The answer stands (it is recomputed identically after a crash); say why it may be.
            warn!(reason = %e, results = batch.len(), "results delivered before they were durable");
        }
        for item in batch.drain(..) {
            match item {
                Item::Result(_, result) => waiters.deliver(&result),
                Item::Settle(settled) => {
                    let _ = settled.send(());
                }
            }
        }
    }
}
