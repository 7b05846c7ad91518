//! `prime --digits K`: make a uniformly random K-digit prime as a journaled job, and wait for
//! it; Ctrl-C cancels the job rather than leaving it running. Also `cancel ID`.

use tokio::io::BufReader;
use tokio::net::unix::OwnedReadHalf;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::args::{CancelArgs, PrimeArgs};
use super::output::Printer;
use super::{endpoint, ClientError, Connection, Exit};
use crate::job::{JobId, Verdict};
use crate::protocol::{self, Accepted, Request, Response};

pub async fn run(args: PrimeArgs) -> Result<Exit, ClientError> {
    // Before the request goes out: a Ctrl-C at any point from here on cancels the job.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ClientError::Signal)?;
    let conn = Connection::connect(&endpoint(&args.opts)).await?;
    let Connection {
        reader, mut writer, ..
    } = conn;
    let (tx, mut responses) = mpsc::channel(4);
    // Reading on its own task keeps frames whole when Ctrl-C interrupts the wait.
    tokio::spawn(read_all(reader, tx));
    let request = Request::MakePrime {
        digits: args.digits,
    };
    protocol::write_frame(&mut writer, &request, protocol::MAX_FRAME_BYTES).await?;
    let mut printer = Printer::stdout(args.opts.json);
    let mut interrupted = false;
    let accepted = loop {
        tokio::select! {
            response = responses.recv() => break response.ok_or(ClientError::Closed)??,
            _ = interrupt.recv() => interrupted = true,
        }
    };
    let id = match accepted {
        Response::Accepted { items } => match items.into_iter().next() {
            Some(Accepted::Job { id, .. }) => id,
            Some(Accepted::Invalid { input, error }) => {
                printer.invalid(&input, &error)?;
                return Ok(Exit::Failed);
            }
            Some(Accepted::Refused { input, error }) => {
                printer.invalid(&input, &error)?;
                return Ok(Exit::Retry);
            }
            None => return Err(ClientError::Unexpected("an empty acceptance".into())),
        },
        other => return Err(ClientError::Unexpected(format!("{other:?}"))),
    };
    // The id on stderr: how to find the answer later if this client goes away.
    eprintln!(
        "primed: job {id}: making a {}-digit prime (Ctrl-C cancels it)",
        args.digits
    );
    if !interrupted {
        tokio::select! {
            response = responses.recv() => {
                return answered(response.ok_or(ClientError::Closed)??, &mut printer);
            }
            _ = interrupt.recv() => {}
        }
    }
    let cancel = Request::Cancel { id };
    protocol::write_frame(&mut writer, &cancel, protocol::MAX_FRAME_BYTES).await?;
    cancelled(id, &mut responses, &mut printer).await
}

/// After a Ctrl-C: the daemon confirms the cancel, or the answer got there first (then the
/// cancel is refused, and the answer is printed as if nothing happened).
async fn cancelled(
    id: JobId,
    responses: &mut mpsc::Receiver<Result<Response, ClientError>>,
    printer: &mut Printer<std::io::BufWriter<std::io::Stdout>>,
) -> Result<Exit, ClientError> {
    loop {
        match responses.recv().await.ok_or(ClientError::Closed)? {
            Ok(Response::Cancelled { id: cancelled }) if cancelled == id => {
                printer.cancelled(id)?;
                printer.flush()?;
                return Ok(Exit::Interrupted);
            }
            // The Done of the cancelled job, delivered to us as its waiter: nothing to print.
            Ok(Response::Done(report)) if report.verdict == Verdict::Cancelled => {}
            Ok(done @ Response::Done(_)) => return answered(done, printer),
            // Refused (already finished, or the journal failed): its Done is on its way.
            Err(ClientError::Refused(_)) => {}
            Ok(other) => return Err(ClientError::Unexpected(format!("{other:?}"))),
            Err(e) => return Err(e),
        }
    }
}

fn answered(
    response: Response,
    printer: &mut Printer<std::io::BufWriter<std::io::Stdout>>,
) -> Result<Exit, ClientError> {
    let Response::Done(report) = response else {
        return Err(ClientError::Unexpected(format!("{response:?}")));
    };
    printer.report(&report)?;
    printer.flush()?;
    Ok(match report.verdict {
        Verdict::Made { .. } => Exit::Ok,
        _ => Exit::Failed,
    })
}

async fn read_all(
    mut reader: BufReader<OwnedReadHalf>,
    tx: mpsc::Sender<Result<Response, ClientError>>,
) {
    loop {
        let next = match protocol::read_frame(&mut reader, protocol::MAX_FRAME_BYTES).await {
            Ok(Some(payload)) => match protocol::decode::<Response>(&payload) {
                Ok(Response::Error { message } | Response::Failed { message }) => {
                    Err(ClientError::Refused(message))
                }
                decoded => decoded.map_err(ClientError::from),
            },
            Ok(None) => return,
            Err(e) => Err(e.into()),
        };
        if tx.send(next).await.is_err() {
            return;
        }
    }
}

pub async fn cancel(args: CancelArgs) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&args.opts)).await?;
    match conn.request(&Request::Cancel { id: args.id }).await? {
        Response::Cancelled { id } => {
            let mut printer = Printer::stdout(args.opts.json);
            printer.cancelled(id)?;
            printer.flush()?;
            Ok(Exit::Ok)
        }
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}
