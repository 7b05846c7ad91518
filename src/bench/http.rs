//! The same load over the HTTP API (`bench --http`): each connection is one keep-alive HTTP/1.1
//! connection to the API's Unix socket that submits a batch (`POST /v1/jobs`) and then waits
//! for each of its jobs (`GET /v1/jobs/{id}?wait=true`), timing every job from the send of its
//! batch to its answer, as the bincode bench does. HTTP/1.1 answers one request at a time, so
//! a connection has one batch in flight; more connections make more.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::http::{Method, StatusCode};

use super::latency::micros;
use super::load::Measured;
use crate::client::{ClientError, Endpoint, HttpClient};
use crate::http::api::{NumbersRequest, SubmitResponse};

fn failed(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Unexpected(format!("{what}: {e}"))
}

/// Runs one connection's share over HTTP; `done` counts answered jobs for the progress line.
pub async fn drive(
    socket: &Path,
    batches: Vec<Vec<String>>,
    done: Arc<AtomicU64>,
) -> Result<Measured, ClientError> {
    let mut client = HttpClient::connect(&Endpoint::new(socket.to_path_buf())).await?;
    let mut measured = Measured::default();
    for numbers in batches {
        let count = numbers.len() as u64;
        let at = Instant::now();
        let body = serde_json::to_vec(&NumbersRequest { numbers })
            .map_err(|e| failed("encoding a batch", e))?;
        let (status, answer) = client.call(Method::POST, "/v1/jobs", body).await?;
        if status != StatusCode::OK {
            measured.refused += count;
            continue;
        }
        let accepted: SubmitResponse =
            serde_json::from_slice(&answer).map_err(|e| failed("reading the jobs", e))?;
        measured.refused += accepted.errors.len() as u64;
        for job in accepted.jobs {
            let path = format!("/v1/jobs/{}?wait=true&timeout=300", job.id);
            let (status, answer) = client.call(Method::GET, &path, Vec::new()).await?;
            if status != StatusCode::OK || answer.windows(7).any(|w| w == b"pending") {
                let answer = String::from_utf8_lossy(&answer);
                return Err(failed(&format!("job {}", job.id), answer));
            }
            measured.latencies_us.push(micros(at.elapsed()));
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(measured)
}
