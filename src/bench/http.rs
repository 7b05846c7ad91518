//! The same load over the HTTP API (`bench --http`): each connection is one keep-alive HTTP/1.1
//! connection to the API's Unix socket that submits a batch (`POST /v1/jobs`) and then waits
//! for each of its jobs (`GET /v1/jobs/{id}?wait=true`), timing every job from the send of its
//! batch to its answer, as the bincode bench does. HTTP/1.1 answers one request at a time, so
//! a connection has one batch in flight; more connections make more.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::latency::micros;
use super::load::Measured;
use crate::client::ClientError;
use crate::http::api::{NumbersRequest, SubmitResponse};

/// The most an answer may be (a batch's accepted jobs, or one job's answer).
const MAX_ANSWER: usize = 64 << 20;

fn failed(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Unexpected(format!("{what}: {e}"))
}

/// Runs one connection's share over HTTP; `done` counts answered jobs for the progress line.
pub async fn drive(
    socket: &Path,
    batches: Vec<Vec<String>>,
    done: Arc<AtomicU64>,
) -> Result<Measured, ClientError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::Unreachable {
            socket: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed("HTTP handshake", e))?;
    tokio::spawn(connection);
    let mut measured = Measured::default();
    for numbers in batches {
        let count = numbers.len() as u64;
        let at = Instant::now();
        let body = serde_json::to_vec(&NumbersRequest { numbers })
            .map_err(|e| failed("encoding a batch", e))?;
        let (status, answer) = call(&mut sender, Method::POST, "/v1/jobs", body).await?;
        if status != StatusCode::OK {
            measured.refused += count;
            continue;
        }
        let accepted: SubmitResponse =
            serde_json::from_slice(&answer).map_err(|e| failed("reading the jobs", e))?;
        measured.refused += accepted.errors.len() as u64;
        for job in accepted.jobs {
            let path = format!("/v1/jobs/{}?wait=true&timeout=300", job.id);
            let (status, answer) = call(&mut sender, Method::GET, &path, Vec::new()).await?;
            if status != StatusCode::OK || answer.windows(7).any(|w| w == b"pending") {
                return Err(failed(
                    &format!("job {}", job.id),
                    String::from_utf8_lossy(&answer),
                ));
            }
            measured.latencies_us.push(micros(at.elapsed()));
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(measured)
}

async fn call(
    sender: &mut SendRequest<Body>,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, axum::body::Bytes), ClientError> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "primed")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .map_err(|e| failed("building a request", e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(path, e))?;
    let status = response.status();
    let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_ANSWER)
        .await
        .map_err(|e| failed(path, e))?;
    Ok((status, bytes))
}
