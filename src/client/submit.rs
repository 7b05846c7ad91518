//! `check` and `submit`: stream numbers (arguments, or stdin one per line) to the daemon in
//! pipelined batches, and print answers in input order. A window of unprinted numbers bounds
//! the client's memory however long the input is. Reading a large stdin into a terminal's
//! stderr, a progress bar shows how far it has got (see `progress`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, Semaphore};

use super::args::InputArgs;
use super::output::Printer;
use super::progress::{Facts, Kind, Progress, Tally};
use super::{endpoint, ClientError, Connection, Exit};
use crate::job::JobId;
use crate::protocol::{self, Accepted, Report, Request, Response};

/// Numbers sent per Submit frame.
const BATCH: usize = 1024;
/// Bytes of numbers per Submit frame, so that big numbers still fit in a frame.
const BATCH_BYTES: usize = 1 << 20;
/// Numbers sent but not yet printed.
const WINDOW: usize = 16 * BATCH;
/// How long stdin may pause before a partial batch is sent.
const INPUT_PAUSE: Duration = Duration::from_millis(5);

enum Slot {
    /// Not accepted: invalid input, or (with `retry`) refused for now.
    Invalid {
        input: String,
        error: String,
        retry: bool,
    },
    /// Accepted, answer not yet in (`check`).
    Waiting,
    /// Accepted, and nothing more to wait for (`submit`).
    Submitted {
        id: JobId,
        n: String,
    },
    Done(Report),
}

/// Answers in input order: slots are appended as batches are accepted and printed from the front.
struct Ordered {
    wait: bool,
    slots: VecDeque<Slot>,
    /// Input position of `slots[0]`.
    base: u64,
    positions: HashMap<JobId, u64>,
}

impl Ordered {
    fn accept(&mut self, items: Vec<Accepted>) {
        for item in items {
            let slot = match item {
                Accepted::Job { id, n } if !self.wait => Slot::Submitted { id, n },
                Accepted::Job { id, .. } => {
                    self.positions
                        .insert(id, self.base + self.slots.len() as u64);
                    Slot::Waiting
                }
                Accepted::Invalid { input, error } => Slot::Invalid {
                    input,
                    error,
                    retry: false,
                },
                Accepted::Refused { input, error } => Slot::Invalid {
                    input,
                    error,
                    retry: true,
                },
            };
            self.slots.push_back(slot);
        }
    }

    fn done(&mut self, report: Report) {
        if let Some(position) = self.positions.remove(&report.id) {
            if let Some(slot) = self.slots.get_mut((position - self.base) as usize) {
                *slot = Slot::Done(report);
            }
        }
    }

    fn has_ready(&self) -> bool {
        !matches!(self.slots.front(), None | Some(Slot::Waiting))
    }

    /// Whether printing what is ready would write to stderr: human-mode errors go there.
    fn ready_writes_stderr(&self, json: bool) -> bool {
        !json
            && self
                .slots
                .iter()
                .take_while(|slot| !matches!(slot, Slot::Waiting))
                .any(|slot| match slot {
                    Slot::Invalid { .. } => true,
                    Slot::Done(report) => report.verdict.is_unanswered(),
                    Slot::Waiting | Slot::Submitted { .. } => false,
                })
    }

    fn pop_ready(&mut self) -> Option<Slot> {
        if !self.has_ready() {
            return None;
        }
        self.base += 1;
        self.slots.pop_front()
    }
}

pub async fn run(args: InputArgs, wait: bool) -> Result<Exit, ClientError> {
    let conn = Connection::connect(&endpoint(&args.opts)).await?;
    let Connection { reader, writer, .. } = conn;
    let kind = if wait { Kind::Check } else { Kind::Submit };
    let progress = Progress::start(kind, Facts::probe(args.numbers.is_empty()));
    let window = Arc::new(Semaphore::new(WINDOW));
    let (total_tx, mut total_rx) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(send_all(
        writer,
        args.numbers,
        wait,
        Arc::clone(&window),
        total_tx,
        progress.tally(),
    ));
    let (responses_tx, mut responses) = mpsc::channel(64);
    tokio::spawn(read_all(reader, responses_tx));

    let json = args.opts.json;
    let mut printer = Printer::stdout(json);
    let mut ordered = Ordered {
        wait,
        slots: VecDeque::new(),
        base: 0,
        positions: HashMap::new(),
    };
    let mut total = None;
    let mut closed = false;
    let mut exit = Exit::Ok;
    while total != Some(ordered.base) {
        // The daemon hangs up once our input ends and it has answered: only an early hang-up
        // (answers still missing once we know how many we sent) is an error.
        if closed && total.is_some() {
            return Err(ClientError::Closed);
        }
        tokio::select! {
            sent = &mut total_rx, if total.is_none() => {
                total = Some(sent.map_err(|_| ClientError::Closed)?);
            }
            response = responses.recv(), if !closed => match response {
                None => {
                    // Nothing will free window space any more: let the sender fail and stop.
                    window.close();
                    closed = true;
                }
                Some(response) => {
                    apply(response, &mut ordered)?;
                    // Take in whatever else has arrived, so that one print (and, with a bar on
                    // the same terminal, one redraw of it) covers it all.
                    while let Ok(response) = responses.try_recv() {
                        apply(response, &mut ordered)?;
                    }
                }
            },
        }
        if ordered.has_ready() {
            let writes_stderr = progress.drawing() && ordered.ready_writes_stderr(json);
            progress.around(writes_stderr, || {
                print_ready(&mut ordered, &mut printer, &window, &progress, &mut exit)
            })?;
        }
    }
    sender.await.map_err(|_| ClientError::Closed)??;
    Ok(exit)
}

fn apply(
    response: Result<Response, ClientError>,
    ordered: &mut Ordered,
) -> Result<(), ClientError> {
    match response? {
        Response::Accepted { items } => ordered.accept(items),
        Response::Done(report) => ordered.done(report),
        other => return Err(ClientError::Unexpected(format!("{other:?}"))),
    }
    Ok(())
}

/// Prints every answer that is next in input order, and frees its window space.
fn print_ready(
    ordered: &mut Ordered,
    printer: &mut Printer<std::io::BufWriter<std::io::Stdout>>,
    window: &Semaphore,
    progress: &Progress,
    exit: &mut Exit,
) -> std::io::Result<()> {
    while let Some(slot) = ordered.pop_ready() {
        window.add_permits(1);
        progress.settled(matches!(slot, Slot::Submitted { .. } | Slot::Done(_)));
        match slot {
            Slot::Invalid {
                input,
                error,
                retry,
            } => {
                *exit = exit.and(if retry { Exit::Retry } else { Exit::Failed });
                printer.invalid(&input, &error)?;
            }
            Slot::Done(report) => {
                if report.verdict.is_unanswered() {
                    *exit = exit.and(Exit::Failed);
                }
                printer.report(&report)?
            }
            Slot::Submitted { id, n } => printer.submitted(id, &n)?,
            Slot::Waiting => {}
        }
    }
    printer.flush()
}

async fn read_all(
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    responses: mpsc::Sender<Result<Response, ClientError>>,
) {
    loop {
        let next = match protocol::read_frame(&mut reader, protocol::MAX_FRAME_BYTES).await {
            Ok(Some(payload)) => protocol::decode::<Response>(&payload).map_err(ClientError::from),
            Ok(None) => return,
            Err(e) => Err(e.into()),
        };
        let next = match next {
            Ok(Response::Error { message }) => Err(ClientError::Refused(message)),
            other => other,
        };
        if responses.send(next).await.is_err() {
            return;
        }
    }
}

/// Sends every input in batches, holding one window permit per number; reports the count.
async fn send_all(
    mut writer: OwnedWriteHalf,
    numbers: Vec<String>,
    wait: bool,
    window: Arc<Semaphore>,
    total: tokio::sync::oneshot::Sender<u64>,
    tally: Tally,
) -> Result<(), ClientError> {
    let mut batch = Batch::new(tally);
    let mut sent = 0u64;
    let mut lines = (numbers.is_empty()).then(|| BufReader::new(tokio::io::stdin()).lines());
    let mut args = numbers.into_iter();
    loop {
        match window.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(ClientError::Closed),
        }
        let next = match &mut lines {
            Some(lines) => {
                let line = next_line(lines, &mut batch, &mut writer, wait).await?;
                if let Some(line) = &line {
                    batch.tally.read(line.len());
                }
                line
            }
            None => args.next(),
        };
        let Some(number) = next else { break };
        batch.push(number);
        sent += 1;
        if batch.full() {
            batch.send(&mut writer, wait).await?;
        }
    }
    batch.send(&mut writer, wait).await?;
    let _ = total.send(sent);
    Ok(())
}

/// The next stdin line; when input pauses (a person typing, a slow producer), the partial
/// batch is sent rather than held back until it fills.
async fn next_line(
    lines: &mut Lines<BufReader<Stdin>>,
    batch: &mut Batch,
    writer: &mut OwnedWriteHalf,
    wait: bool,
) -> Result<Option<String>, ClientError> {
    if !batch.numbers.is_empty() {
        // next_line is cancel-safe, so a timed-out attempt loses nothing.
        if let Ok(line) = tokio::time::timeout(INPUT_PAUSE, lines.next_line()).await {
            return Ok(line?);
        }
        batch.send(writer, wait).await?;
    }
    Ok(lines.next_line().await?)
}

struct Batch {
    numbers: Vec<String>,
    bytes: usize,
    tally: Tally,
}

impl Batch {
    fn new(tally: Tally) -> Batch {
        Batch {
            numbers: Vec::new(),
            bytes: 0,
            tally,
        }
    }

    fn push(&mut self, number: String) {
        self.bytes += number.len();
        self.numbers.push(number);
    }

    fn full(&self) -> bool {
        self.numbers.len() >= BATCH || self.bytes >= BATCH_BYTES
    }

    async fn send(&mut self, writer: &mut OwnedWriteHalf, wait: bool) -> Result<(), ClientError> {
        if self.numbers.is_empty() {
            return Ok(());
        }
        let numbers = std::mem::take(&mut self.numbers);
        let count = numbers.len();
        self.bytes = 0;
        let request = Request::Submit { numbers, wait };
        protocol::write_frame(writer, &request, protocol::MAX_FRAME_BYTES).await?;
        self.tally.sent(count);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(wait: bool, items: Vec<Accepted>) -> Ordered {
        let mut ordered = Ordered {
            wait,
            slots: VecDeque::new(),
            base: 0,
            positions: HashMap::new(),
        };
        ordered.accept(items);
        ordered
    }

    fn job(id: JobId) -> Accepted {
        Accepted::Job {
            id,
            n: "97".to_string(),
        }
    }

    fn invalid() -> Accepted {
        Accepted::Invalid {
            input: "abc".to_string(),
            error: "not a number".to_string(),
        }
    }

    #[test]
    fn a_ready_human_error_writes_to_stderr() {
        let ordered = ordered(false, vec![job(1), invalid()]);
        assert!(ordered.has_ready());
        assert!(ordered.ready_writes_stderr(false));
        assert!(
            !ordered.ready_writes_stderr(true),
            "JSON errors go to stdout"
        );
    }

    #[test]
    fn an_error_behind_an_unanswered_job_is_not_printed_yet() {
        let ordered = ordered(true, vec![job(1), invalid()]);
        assert!(!ordered.has_ready());
        assert!(!ordered.ready_writes_stderr(false));
    }

    #[test]
    fn ids_of_submitted_jobs_go_to_stdout() {
        let ordered = ordered(false, vec![job(1), job(2)]);
        assert!(ordered.has_ready());
        assert!(!ordered.ready_writes_stderr(false));
    }
}
