//! `prime --digits K`: make a uniformly random K-digit prime as a journaled job, and wait for
//! it; Ctrl-C cancels the job rather than leaving it running. Also `cancel ID`.

use tokio::io::BufReader;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::mpsc;

use super::output::Printer;
use super::{socket_path, ClientError, Connection, Exit};
use crate::cli::{CancelArgs, PrimeArgs};
use crate::job::{JobId, Verdict};
use crate::protocol::{self, Accepted, Request, Response};

pub async fn run(args: PrimeArgs) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&socket_path(args.opts.socket)).await?;
    let request = Request::MakePrime {
        digits: args.digits,
    };
    let mut printer = Printer::stdout(args.opts.json);
    let id = match conn.request(&request).await? {
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
    let Connection { reader, mut writer } = conn;
    let (tx, mut responses) = mpsc::channel(4);
    // Reading on its own task keeps frames whole when Ctrl-C interrupts the wait.
    tokio::spawn(read_all(reader, tx));
    let response = tokio::select! {
        response = responses.recv() => response,
        interrupted = tokio::signal::ctrl_c() => {
            interrupted?;
            let cancel = Request::Cancel { id };
            protocol::write_frame(&mut writer, &cancel, protocol::MAX_FRAME_BYTES).await?;
            return cancelled(id, &mut responses, &mut printer).await;
        }
    };
    answered(response.ok_or(ClientError::Closed)??, &mut printer)
}

/// After a Ctrl-C: the daemon confirms the cancel, or the answer got there first.
async fn cancelled(
    id: JobId,
    responses: &mut mpsc::Receiver<Result<Response, ClientError>>,
    printer: &mut Printer<std::io::BufWriter<std::io::Stdout>>,
) -> Result<Exit, ClientError> {
    loop {
        match responses.recv().await.ok_or(ClientError::Closed)?? {
            Response::Cancelled { id: cancelled } if cancelled == id => {
                printer.cancelled(id)?;
                printer.flush()?;
                return Ok(Exit::Interrupted);
            }
            // The Done of the cancelled job, delivered to us as its waiter: nothing to print.
            Response::Done(report) if report.verdict == Verdict::Cancelled => {}
            done @ Response::Done(_) => return answered(done, printer),
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
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
    let mut conn = Connection::connect(&socket_path(args.opts.socket)).await?;
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
