//! The request-and-answer commands: result, status, jobs, kill.

use std::collections::{HashMap, HashSet};

use super::args::{AreaArgs, ClientOpts, EventsArgs, KillArgs, ResultArgs};
use super::output::Printer;
use super::{endpoint, ClientError, Connection, Exit};
use crate::job::{now_ms, JobId};
use crate::protocol::{Report, Request, Response};

enum Answer {
    Done(Report),
    Pending,
    Pruned(String),
    Unknown(String),
}

pub async fn results(args: ResultArgs) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&args.opts)).await?;
    if args.wait {
        // Jobs take as long as they take.
        conn.answer_timeout = None;
    }
    let mut seen = HashSet::new();
    let ids: Vec<JobId> = args.ids.into_iter().filter(|id| seen.insert(*id)).collect();
    conn.send(&Request::Results {
        ids: ids.clone(),
        wait: args.wait,
    })
    .await?;
    let mut answers = HashMap::new();
    let mut printer = Printer::stdout(args.opts.json);
    let mut next = 0;
    let mut exit = Exit::Ok;
    while next < ids.len() {
        let (id, answer) = match conn.recv().await? {
            Response::Done(report) => (report.id, Answer::Done(report)),
            Response::Pending { id } => (id, Answer::Pending),
            Response::Unknown { id, error } => (id, Answer::Unknown(error)),
            Response::Pruned { id, reason } => (id, Answer::Pruned(reason)),
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        };
        answers.entry(id).or_insert(answer);
        // Print in the order asked, as soon as the head of the list is answered.
        while let Some(answer) = ids.get(next).and_then(|id| answers.remove(id)) {
            match answer {
                Answer::Done(report) => {
                    if report.verdict.is_unanswered() {
                        exit = exit.and(Exit::Failed);
                    }
                    printer.result(&report)?
                }
                Answer::Pending => printer.pending(ids[next])?,
                Answer::Pruned(reason) => {
                    exit = exit.and(Exit::Pruned);
                    printer.pruned(ids[next], &reason)?
                }
                Answer::Unknown(error) => {
                    exit = exit.and(Exit::Failed);
                    printer.unknown(ids[next], &error)?
                }
            }
            next += 1;
        }
        printer.flush()?;
    }
    Ok(exit)
}

pub async fn status(opts: ClientOpts) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&opts)).await?;
    match conn.request(&Request::Status).await? {
        Response::Status(status) => {
            let mut printer = Printer::stdout(opts.json);
            printer.status(&status)?;
            printer.flush()?;
            Ok(Exit::Ok)
        }
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

pub async fn jobs(opts: ClientOpts) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&opts)).await?;
    conn.send(&Request::Jobs).await?;
    let mut printer = Printer::stdout(opts.json);
    let mut listed = 0;
    loop {
        match conn.recv().await? {
            Response::Jobs { jobs, more } => {
                for job in &jobs {
                    if listed == 0 {
                        printer.jobs_header()?;
                    }
                    printer.job(job)?;
                    listed += 1;
                }
                if !more {
                    if listed == 0 {
                        printer.no_jobs()?;
                    }
                    printer.flush()?;
                    return Ok(Exit::Ok);
                }
            }
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}

pub async fn events(args: EventsArgs) -> Result<Exit, ClientError> {
    let since_ms = match args.since {
        Some(window) => {
            now_ms().saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
        }
        None => 0,
    };
    if let Some(dir) = &args.data_dir {
        let events = crate::journal::stored_events(&dir.join("journal"), since_ms)?;
        let mut printer = Printer::stdout(args.opts.json);
        for event in &events {
            printer.event(event)?;
        }
        printer.flush()?;
        return Ok(Exit::Ok);
    }
    let mut conn = Connection::connect(&endpoint(&args.opts)).await?;
    if args.follow {
        // Events come when they happen: silence is no failure.
        conn.answer_timeout = None;
    }
    conn.send(&Request::Events {
        since_ms,
        follow: args.follow,
    })
    .await?;
    let mut printer = Printer::stdout(args.opts.json);
    loop {
        let response = match conn.recv().await {
            // A followed daemon that stops ends the stream; that is no error.
            Err(ClientError::Closed) if args.follow => return Ok(Exit::Ok),
            response => response?,
        };
        match response {
            Response::Events { events, more } => {
                for event in &events {
                    printer.event(event)?;
                }
                // Following, every event is shown as it comes.
                printer.flush()?;
                if !more {
                    return Ok(Exit::Ok);
                }
            }
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}

pub async fn alarms(opts: ClientOpts) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&opts)).await?;
    match conn.request(&Request::Alarms).await? {
        Response::Alarms { alarms } => {
            let mut printer = Printer::stdout(opts.json);
            printer.alarms(&alarms)?;
            printer.flush()?;
            Ok(Exit::Ok)
        }
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

pub async fn tree(opts: ClientOpts) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&opts)).await?;
    match conn.request(&Request::Tree).await? {
        Response::Tree(root) => {
            let mut printer = Printer::stdout(opts.json);
            printer.tree(&root)?;
            printer.flush()?;
            Ok(Exit::Ok)
        }
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

pub async fn area(args: AreaArgs) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&args.opts)).await?;
    let shape = args.shape.into();
    match conn.request(&Request::Area { shape }).await? {
        Response::Area { shape, area } => {
            let mut printer = Printer::stdout(args.opts.json);
            printer.area(&shape, area)?;
            printer.flush()?;
            Ok(Exit::Ok)
        }
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

pub async fn reload(opts: ClientOpts) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&opts)).await?;
    match conn.request(&Request::Reload).await? {
        Response::Reloaded { changes } => {
            let mut printer = Printer::stdout(opts.json);
            printer.reloaded(&changes)?;
            printer.flush()?;
            Ok(Exit::Ok)
        }
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

pub async fn kill(args: KillArgs) -> Result<Exit, ClientError> {
    let mut conn = Connection::connect(&endpoint(&args.opts)).await?;
    match conn.request(&Request::Kill { actor: args.actor }).await? {
        Response::Killed { actor } => {
            let mut printer = Printer::stdout(args.opts.json);
            printer.killed(&actor)?;
            printer.flush()?;
            Ok(Exit::Ok)
        }
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}
