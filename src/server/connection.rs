//! One client connection: the hello exchange, then a reader that reads requests and hands
//! submissions to the intake ([`crate::jobs`]), an ack stage that answers submissions in order
//! once the intake says they are durable, and a writer that sends responses. The connection holds one permit per job it owes an answer for, so a client
//! that submits without reading is slowed down instead of growing the daemon's memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, Notify, Semaphore};
use tracing::{debug, warn};

use super::limits::{LogBudget, Slot};
use super::{admin, Shared};
use crate::event::Event;
use crate::job::JobId;
use crate::jobs::{Intake, Submission};
use crate::outcomes::{Delivery, Waiter};
use crate::protocol::{self, FrameError, Request, Response, MAX_BATCH};

/// How long a refused peer gets to take its refusal before the socket is simply closed.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

static PEERS_REFUSED: LogBudget = LogBudget::new(Duration::from_secs(1));
static OVER_CAP: LogBudget = LogBudget::new(Duration::from_secs(1));
static BAD_FRAMES: LogBudget = LogBudget::new(Duration::from_secs(1));

/// Sorts a fresh connection before it costs anything: a peer the policy refuses, or one over
/// the connection cap, is told why and closed at once (it never holds a slot, so a crowd of
/// refused sockets cannot lock anyone out); the others are served in their own task.
pub fn admit(stream: UnixStream, shared: &Arc<Shared>) {
    let admitted = check_peer(&stream, shared).and_then(|privileged| {
        shared.slots.take(privileged).ok_or_else(|| {
            let cap = shared.slots.cap();
            if let Some(suppressed) = OVER_CAP.allow(Instant::now()) {
                warn!(
                    max_connections = cap,
                    suppressed,
                    event = "connection_refused",
                    "refused a connection over the cap"
                );
            }
            format!(
                "too many connections: {cap} are open, the most limits.max_connections allows \
                 (or the descriptor limit); retry later"
            )
        })
    });
    match admitted {
        Ok(slot) => drop(tokio::spawn(handle(stream, Arc::clone(shared), slot))),
        Err(message) => drop(tokio::spawn(turn_away(
            stream,
            message,
            shared.limits.max_frame_bytes,
        ))),
    }
}

/// Our hello and the refusal, without waiting for the peer's hello: the client reads them in
/// that order, so it can say why it was turned away.
async fn turn_away(mut stream: UnixStream, message: String, max_frame: usize) {
    let refusal = async {
        stream.write_all(&protocol::hello()).await?;
        protocol::write_frame(&mut stream, &Response::Error { message }, max_frame).await?;
        stream.shutdown().await.map_err(FrameError::from)
    };
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refusal).await;
}

async fn handle(stream: UnixStream, shared: Arc<Shared>, _slot: Slot) {
    if let Err(e) = run(stream, shared).await {
        if let Some(suppressed) = BAD_FRAMES.allow(Instant::now()) {
            debug!(reason = %e, suppressed, "connection ended with an error");
        }
    }
}

async fn run(mut stream: UnixStream, shared: Arc<Shared>) -> Result<(), FrameError> {
    let mut hello = [0; protocol::HELLO_LEN];
    tokio::time::timeout(shared.limits.read_timeout, stream.read_exact(&mut hello))
        .await
        .map_err(|_| FrameError::Timeout)??;
    // Our hello goes back whatever came in, so an old client can report the version mismatch.
    stream.write_all(&protocol::hello()).await?;
    protocol::check_hello(hello)?;
    let (reader, writer) = stream.into_split();
    let permits = Arc::new(Semaphore::new(shared.limits.max_outstanding));
    let (out, deliveries) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog::default());
    let writing = tokio::spawn(write_loop(
        writer,
        deliveries,
        Arc::clone(&permits),
        Arc::clone(&backlog),
        shared.limits,
    ));
    let (acks, ack_queue) = mpsc::unbounded_channel();
    tokio::spawn(ack_loop(Arc::clone(&shared), ack_queue, out.clone()));
    let connection = Connection {
        shared,
        out,
        acks,
        permits,
        backlog: Arc::clone(&backlog),
    };
    let read = connection.read_loop(reader).await;
    // At shutdown the answers still owed are delivered (the drain); otherwise the client may
    // have closed only its sending side (check and submit do), or be gone.
    if !*connection.shared.closing.borrow() {
        backlog.reader_done.notify_one();
    }
    drop(connection);
    let _ = writing.await;
    read
}

/// Whether the peer may use the daemon, and if so whether it is privileged (the daemon's own
/// user or root, who may take the connections held in reserve).
pub(crate) fn check_peer(stream: &UnixStream, shared: &Shared) -> Result<bool, String> {
    let credentials = stream
        .peer_cred()
        .map_err(|e| format!("permission denied: cannot read peer credentials: {e}"))?;
    shared
        .peers
        .check(stream, &credentials)
        .map(|()| shared.peers.privileged(credentials.uid()))
        .inspect_err(|reason| {
            if let Some(suppressed) = PEERS_REFUSED.allow(Instant::now()) {
                warn!(uid = credentials.uid(), pid = credentials.pid(), reason = %reason,
                      suppressed, event = "peer_refused", "refused a client");
            }
        })
}

/// `write` unless it makes no progress for `limit`.
async fn within(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), FrameError>>,
) -> Result<(), FrameError> {
    tokio::time::timeout(limit, write)
        .await
        .unwrap_or(Err(FrameError::Timeout))
}

/// How often a connection whose reader has stopped checks whether its peer is gone.
const GONE_CHECK: Duration = Duration::from_secs(1);

/// Whether the peer closed its socket entirely: a half-close (the client's end of input) only
/// ends what we read, while a full close also hangs up our sending side (POLLHUP). A client
/// that is gone frees its slot and descriptor at once instead of when its jobs are done.
fn peer_gone(stream: &UnixStream) -> bool {
    let mut poll = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(stream),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a descriptor we own, no waiting.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Most answers the connection itself may have queued for the writer (the answers to jobs are
/// bounded by the permits): past it the reader waits for the writer, so a client that asks and
/// never reads holds a bounded queue, not the daemon's memory.
const MAX_QUEUED: usize = 1024;

/// The writer's side of the conversation, as the reader sees it.
#[derive(Default)]
struct Backlog {
    queued: AtomicUsize,
    drained: Notify,
    /// The writer has stopped: nothing queued will be written.
    stopped: AtomicBool,
    /// The reader stopped (end of stream, a bad frame, idleness): from then on the writer
    /// watches for the peer being gone (see [`peer_gone`]).
    reader_done: Notify,
}

impl Backlog {
    fn queued_one(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    fn written_one(&self) {
        // Answers to jobs are written without being counted here: never below zero.
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(1))
            });
        self.drained.notify_waiters();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.drained.notify_waiters();
    }

    /// Resolves once there is room in the queue (or the writer has stopped).
    async fn room(&self) {
        loop {
            let drained = self.drained.notified();
            let full = self.queued.load(Ordering::Acquire) >= MAX_QUEUED;
            if !full || self.stopped.load(Ordering::Acquire) {
                return;
            }
            drained.await;
        }
    }
}

struct Connection {
    shared: Arc<Shared>,
    out: Waiter,
    /// Submissions taken in, refused ones too: answers keep the order of the submissions.
    acks: mpsc::UnboundedSender<Intake>,
    permits: Arc<Semaphore>,
    backlog: Arc<Backlog>,
}

impl Connection {
    fn send(&self, response: Response, release: u32) {
        self.backlog.queued_one();
        let _ = self.out.send(Delivery { response, release });
    }

    async fn read_loop(&self, mut reader: OwnedReadHalf) -> Result<(), FrameError> {
        let limits = self.shared.limits;
        let mut closing = self.shared.closing.clone();
        // The writer closes the permits when it stops: then nothing read could be answered.
        while !self.permits.is_closed() {
            tokio::select! {
                () = self.backlog.room() => {}
                _ = closing.wait_for(|&closing| closing) => return Ok(()),
            }
            let first = tokio::select! {
                first = protocol::read_first_byte(&mut reader) => first,
                () = tokio::time::sleep(limits.idle_timeout) => {
                    if self.owed() {
                        continue;
                    }
                    let message = format!(
                        "closing an idle connection: nothing asked for {}s \
                         (limits.idle_timeout_secs)",
                        limits.idle_timeout.as_secs()
                    );
                    self.send(Response::Error { message }, 0);
                    return Ok(());
                }
                _ = closing.wait_for(|&closing| closing) => return Ok(()),
            };
            let rest = async {
                match first? {
                    None => Ok(None),
                    Some(byte) => {
                        let frame =
                            protocol::read_frame_rest(byte, &mut reader, limits.max_frame_bytes);
                        match tokio::time::timeout(limits.read_timeout, frame).await {
                            Ok(frame) => frame.map(Some),
                            Err(_) => Err(FrameError::Timeout),
                        }
                    }
                }
            };
            let frame = tokio::select! {
                frame = rest => frame,
                _ = closing.wait_for(|&closing| closing) => return Ok(()),
            };
            let request = match frame {
                Ok(Some(payload)) => protocol::decode::<Request>(&payload),
                Ok(None) => return Ok(()),
                Err(e) => Err(e),
            };
            match request {
                Ok(request) => self.serve(request).await,
                Err(e) => {
                    // A bad frame ends this connection only: say why, then close.
                    self.send(
                        Response::Error {
                            message: e.to_string(),
                        },
                        0,
                    );
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Whether the peer is owed answers (jobs it waits for): such a connection is not idle.
    fn owed(&self) -> bool {
        self.permits.available_permits() < self.shared.limits.max_outstanding
    }

    async fn serve(&self, request: Request) {
        if matches!(
            request,
            Request::Tree | Request::Kill { .. } | Request::Area { .. }
        ) {
            if let Some(refusal) = admin::standby_refusal(&self.shared).await {
                return self.send(refusal, 0);
            }
        }
        match request {
            Request::Submit { numbers, wait } => self.submit(numbers, wait).await,
            Request::Results { ids, wait } => self.results(ids, wait).await,
            Request::MakePrime { digits } => self.make_prime(digits).await,
            Request::Cancel { id } => self.send(admin::cancel(&self.shared.ctx, id).await, 0),
            Request::Status => self.send(admin::status(&self.shared).await, 0),
            Request::Tree => self.send(admin::tree(&self.shared.ctx).await, 0),
            Request::Reload => {
                let response = match self.shared.reloader.reload().await {
                    Ok(changes) => Response::Reloaded { changes },
                    Err(message) => Response::Failed { message },
                };
                self.send(response, 0)
            }
            Request::Area { shape } => self.send(admin::area(shape).await, 0),
            Request::Alarms => {
                let alarms = self.shared.ctx.alarms.active();
                self.send(Response::Alarms { alarms }, 0)
            }
            Request::Jobs => {
                admin::jobs(
                    &self.shared.ctx,
                    |r| self.send(r, 0),
                    || self.backlog.room(),
                )
                .await
            }
            Request::Kill { actor } => {
                self.send(admin::kill(&actor, self.shared.ctx.testers()).await, 0)
            }
            Request::Events {
                since_ms,
                follow: false,
            } => {
                admin::events(&self.shared.ctx, since_ms, false, |r| self.send(r, 0));
            }
            Request::Events {
                since_ms,
                follow: true,
            } => self.follow_events(since_ms).await,
        }
    }

    /// The stored events, then each new one as it is recorded, until the client hangs up or
    /// the daemon shuts down. Subscribing first means none falls between the two.
    async fn follow_events(&self, since_ms: u64) {
        let mut live = self.shared.ctx.events.subscribe();
        let Some(stored) = admin::events(&self.shared.ctx, since_ms, true, |r| self.send(r, 0))
        else {
            return;
        };
        let tail: Vec<Event> = stored.iter().rev().take(64).cloned().collect();
        let mut closing = self.shared.closing.clone();
        loop {
            let event = tokio::select! {
                event = live.recv() => event,
                _ = closing.wait_for(|&closing| closing) => return,
                () = self.out.closed() => return,
            };
            match event {
                // Recorded between the subscription and the read: already sent.
                Ok(event) if tail.contains(&event) => {}
                Ok(event) => {
                    // A follower that does not read falls behind (and is told it lagged),
                    // rather than queueing every event.
                    self.backlog.room().await;
                    let events = vec![event];
                    self.send(Response::Events { events, more: true }, 0);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(missed, "an event follower fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Takes `permits` of this connection's allowance; false once the writer has gone.
    async fn acquire(&self, permits: usize) -> bool {
        let permits = u32::try_from(permits).unwrap_or(u32::MAX);
        match self.permits.acquire_many(permits).await {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    async fn submit(&self, numbers: Vec<String>, wait: bool) {
        match self.shared.ctx.jobs.submission(numbers) {
            Ok(submission) => self.take_in(submission, wait).await,
            Err(message) => self.send(Response::Error { message }, 0),
        }
    }

    /// "Make me a K-digit prime": one job, answered when the prime is found (or the job is
    /// cancelled).
    async fn make_prime(&self, digits: u32) {
        let submission = self.shared.ctx.jobs.make_prime(digits);
        self.take_in(submission, true).await
    }

    /// Hands a submission to the intake once this connection may owe its answers, and queues
    /// it for the ack stage.
    async fn take_in(&self, submission: Submission, wait: bool) {
        if !self.acquire(submission.jobs()).await {
            return;
        }
        let _ = self
            .acks
            .send(self.shared.ctx.jobs.accept(submission, wait));
    }

    async fn results(&self, ids: Vec<JobId>, wait: bool) {
        if ids.len() > MAX_BATCH {
            let message = format!(
                "a lookup of {} ids exceeds the maximum of {MAX_BATCH} per request",
                ids.len()
            );
            return self.send(Response::Error { message }, 0);
        }
        for id in ids {
            // A wait holds one permit until its answer is written.
            if wait && !self.acquire(1).await {
                return;
            }
            let waiter = wait.then_some(&self.out);
            if let Some(response) = self.shared.ctx.jobs.answer(id, waiter).await {
                self.send(response, u32::from(wait));
            }
        }
    }
}

/// Answers submissions in the order they came, each once the intake has made it durable.
async fn ack_loop(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Intake>, out: Waiter) {
    while let Some(intake) = queue.recv().await {
        shared.ctx.jobs.acknowledge(intake, &out).await;
    }
}

/// Writes responses, flushing whenever the queue runs dry, and frees permits as it goes.
async fn write_loop(
    writer: OwnedWriteHalf,
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    permits: Arc<Semaphore>,
    backlog: Arc<Backlog>,
    limits: super::Limits,
) -> Result<(), FrameError> {
    let written = write_all(writer, &mut deliveries, &permits, &backlog, limits).await;
    // Whatever stopped the writer, the reader must not wait for permits that cannot come back.
    permits.close();
    backlog.stop();
    written
}

async fn write_all(
    writer: OwnedWriteHalf,
    deliveries: &mut mpsc::UnboundedReceiver<Delivery>,
    permits: &Semaphore,
    backlog: &Backlog,
    limits: super::Limits,
) -> Result<(), FrameError> {
    // A client that reads nothing for this long is given up on: its queue stays bounded, and
    // its slot does not stay taken by a writer that cannot write.
    let stalled = limits.idle_timeout;
    let mut writer = BufWriter::new(writer);
    let mut reader_done = false;
    loop {
        let delivery = match deliveries.try_recv() {
            Ok(delivery) => delivery,
            // Nothing left queued, and nobody to deliver the rest to.
            Err(_) if reader_done && peer_gone(writer.get_ref().as_ref()) => break,
            Err(_) => tokio::select! {
                delivery = deliveries.recv() => match delivery {
                    Some(delivery) => delivery,
                    None => break,
                },
                () = backlog.reader_done.notified(), if !reader_done => {
                    reader_done = true;
                    continue;
                }
                () = tokio::time::sleep(GONE_CHECK), if reader_done => continue,
            },
        };
        let frame = protocol::write_frame(&mut writer, &delivery.response, limits.max_frame_bytes);
        within(stalled, frame).await?;
        permits.add_permits(delivery.release as usize);
        backlog.written_one();
        if deliveries.is_empty() {
            within(stalled, async { Ok(writer.flush().await?) }).await?;
        }
        // An error ends the conversation: the reader has already stopped.
        if matches!(delivery.response, Response::Error { .. }) {
            break;
        }
    }
    writer.flush().await?;
    Ok(())
}
