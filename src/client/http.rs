//! A small HTTP/1.1 client of the daemon's HTTP API on its Unix socket (hyper's), for the
//! commands that use the API (`primed web`, `primed bench --http`): the same connection and
//! peer checks as the CLI's own socket.

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::conn::{ClientError, Connection, Endpoint};

/// The most an answer may be.
const MAX_ANSWER: usize = 64 << 20;

pub struct HttpClient {
    sender: SendRequest<Body>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Unexpected(format!("{what}: {e}"))
}

impl HttpClient {
    /// One keep-alive connection to the API's socket, whose server is checked first.
    pub async fn connect(endpoint: &Endpoint) -> Result<HttpClient, ClientError> {
        let stream = Connection::open_trusted(endpoint).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed("HTTP handshake", e))?;
        tokio::spawn(connection);
        Ok(HttpClient { sender })
    }

    /// One request; its status and body.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "primed")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .map_err(|e| failed("building a request", e))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| failed(path, e))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_ANSWER)
            .await
            .map_err(|e| failed(path, e))?;
        Ok((status, bytes))
    }
}
