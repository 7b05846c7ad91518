//! The load generator proper: `connections` clients, each keeping up to `pipeline` jobs
//! unanswered, submitting pre-generated batches with `Submit { wait: true }` and timing every
//! job from the send of its batch to its `Done`: the latency a `check` user sees, durability
//! of the ack and of the answer included.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, Semaphore};

use super::latency::micros;
use super::mix::{Mix, Rng};
use crate::client::{ClientError, Connection, Endpoint};
use crate::job::JobId;
use crate::protocol::{self, Accepted, Request, Response};

/// The numbers one connection submits.
pub struct Plan {
    pub jobs: u64,
    pub batch: usize,
    pub mix: Mix,
    pub seed: u64,
}

/// What one connection measured.
#[derive(Default)]
pub struct Measured {
    pub latencies_us: Vec<u64>,
    pub refused: u64,
}

/// Generates the connection's numbers up front, so the clock times the daemon, not us.
pub fn batches(plan: &Plan) -> Vec<Vec<String>> {
    let mut rng = Rng::new(plan.seed);
    let mut left = plan.jobs;
    let mut batches = Vec::new();
    while left > 0 {
        let size = left.min(plan.batch as u64);
        batches.push((0..size).map(|_| plan.mix.next(&mut rng)).collect());
        left -= size;
    }
    batches
}

/// Runs one connection's share; `done` counts answered jobs for the progress line.
pub async fn drive(
    socket: &Path,
    batches: Vec<Vec<String>>,
    pipeline: usize,
    done: Arc<AtomicU64>,
) -> Result<Measured, ClientError> {
    let Connection {
        mut reader, writer, ..
    } = Connection::connect(&Endpoint::new(socket.to_path_buf())).await?;
    let window = Arc::new(Semaphore::new(pipeline));
    let (sent_tx, mut sent) = mpsc::unbounded_channel::<Instant>();
    let sender = tokio::spawn(send_batches(writer, batches, Arc::clone(&window), sent_tx));
    let mut started: HashMap<JobId, Instant> = HashMap::new();
    let mut batch_starts: VecDeque<Instant> = VecDeque::new();
    let mut measured = Measured::default();
    let mut outstanding = 0usize;
    let mut sending = true;
    loop {
        while let Ok(at) = sent.try_recv() {
            batch_starts.push_back(at);
        }
        if !sending && outstanding == 0 && batch_starts.is_empty() {
            break;
        }
        let response = tokio::select! {
            at = sent.recv(), if sending => {
                match at {
                    Some(at) => batch_starts.push_back(at),
                    None => sending = false,
                }
                continue;
            }
            frame = protocol::read_frame(&mut reader, protocol::MAX_FRAME_BYTES) => {
                let payload = frame?.ok_or(ClientError::Closed)?;
                protocol::decode::<Response>(&payload)?
            }
        };
        match response {
            Response::Accepted { items } => {
                // The instant was queued before its batch was written: it is there by now.
                while let Ok(at) = sent.try_recv() {
                    batch_starts.push_back(at);
                }
                let at = batch_starts.pop_front().ok_or(ClientError::Closed)?;
                for item in items {
                    match item {
                        Accepted::Job { id, .. } => {
                            started.insert(id, at);
                            outstanding += 1;
                        }
                        Accepted::Invalid { .. } | Accepted::Refused { .. } => {
                            measured.refused += 1;
                            window.add_permits(1);
                        }
                    }
                }
            }
            Response::Done(report) => {
                if let Some(at) = started.remove(&report.id) {
                    measured.latencies_us.push(micros(at.elapsed()));
                    outstanding -= 1;
                    done.fetch_add(1, Ordering::Relaxed);
                    window.add_permits(1);
                }
            }
            Response::Error { message } | Response::Failed { message } => {
                return Err(ClientError::Refused(message))
            }
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
    sender.await.map_err(|_| ClientError::Closed)??;
    Ok(measured)
}

async fn send_batches(
    mut writer: tokio::net::unix::OwnedWriteHalf,
    batches: Vec<Vec<String>>,
    window: Arc<Semaphore>,
    sent: mpsc::UnboundedSender<Instant>,
) -> Result<(), ClientError> {
    for numbers in batches {
        let permits = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
        window
            .acquire_many(permits)
            .await
            .map_err(|_| ClientError::Closed)?
            .forget();
        let request = Request::Submit {
            numbers,
            wait: true,
        };
        // The instant is queued before the frame goes out, so the reader always has it when
        // the ack arrives.
        let _ = sent.send(Instant::now());
        protocol::write_frame(&mut writer, &request, protocol::MAX_FRAME_BYTES).await?;
    }
    Ok(())
}
