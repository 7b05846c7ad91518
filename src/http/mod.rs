//! The HTTP/JSON API: the same operations as the CLI, for any language, on a Unix socket of
//! its own (peers checked as on the CLI's socket) and, if the operator asks, on a TCP address
//! where every request carries the bearer token from `http.token`. `/metrics` serves
//! Prometheus, `/v1/openapi.json` describes the rest.
//!
//! - [`api`]: the `/v1` endpoints; [`events`]: the server-sent event stream;
//! - [`error`]: the one error shape and the status-code mapping;
//! - [`idempotency`]: `Idempotency-Key` for submissions; [`token`]: the TCP listener's token;
//! - [`openapi`]: the OpenAPI document, generated from the handlers;
//! - [`web`]: the observer, a live web page of the tree and its work (`/`);
//! - [`scrape`]: `/metrics`, the instruments and what is read at scrape time.
//!
//! Each connection is served by hyper's HTTP/1 with a header timeout (`limits.read_timeout`,
//! also how long an idle keep-alive connection stays), under the same connection cap as the
//! CLI's socket; the router is axum's.

pub mod api;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod openapi;
pub mod scrape;
pub mod token;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::server::{self, LogBudget, Shared, Slot, Slots};
use error::ApiError;
use token::Token;

/// Where the API listens: the Unix socket (None: off) and, optionally, a TCP address.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub socket: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

/// How a request reached us: the token is asked of TCP peers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Unix,
    Tcp,
}

/// What every handler shares.
pub struct Api {
    pub shared: Arc<Shared>,
    token: Option<Token>,
    idempotency: api::Keys,
    /// HTTP connections open (apart from the CLI's), against `limits.max_connections`.
    slots: Arc<Slots>,
    /// The observer's address with its token, when there is a TCP listener.
    web_url: Option<String>,
}

static UNAUTHORIZED: LogBudget = LogBudget::new(Duration::from_secs(1));
static OVER_CAP: LogBudget = LogBudget::new(Duration::from_secs(1));

/// The bound listeners, before serving: bound early so a bad path or address fails the start.
pub struct Listeners {
    unix: Option<server::Listener>,
    tcp: Option<TcpListener>,
    token: Option<Token>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Socket(#[from] server::ServerError),
    #[error("cannot listen on {addr}: {source}")]
    Tcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] token::TokenError),
}

/// Binds what `options` asks for; the token is made (or read) only with a TCP address.
pub async fn bind(
    options: &HttpOptions,
    peers: &server::PeerPolicy,
    data_dir: &std::path::Path,
) -> Result<Listeners, HttpError> {
    let unix = match &options.socket {
        Some(path) => Some(server::bind(path, peers)?),
        None => None,
    };
    let (tcp, token) = match options.listen {
        Some(addr) => {
            let token = Token::load_or_create(data_dir)?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| HttpError::Tcp { addr, source })?;
            if !addr.ip().is_loopback() {
                warn!(%addr, event = "http_listen_remote",
                      "the API listens beyond this machine: its token travels in clear text");
            }
            (Some(listener), Some(token))
        }
        None => (None, None),
    };
    Ok(Listeners { unix, tcp, token })
}

impl Listeners {
    /// Serves until dropped; then it stops accepting (the socket file goes), while
    /// connections already open finish their requests until the daemon closes.
    pub async fn serve(self, shared: Arc<Shared>) {
        let web_url = match (&self.tcp, &self.token) {
            (Some(listener), Some(token)) => listener
                .local_addr()
                .ok()
                .map(|addr| web::address(addr, token)),
            _ => None,
        };
        let api = Arc::new(Api {
            web_url,
            slots: Slots::new(shared.limits.max_connections),
            shared: Arc::clone(&shared),
            token: self.token,
            idempotency: Mutex::default(),
        });
        let router = router(Arc::clone(&api));
        let unix = async {
            if let Some(listener) = &self.unix {
                info!(socket = %listener.path().display(), event = "http_listening",
                      "serving the HTTP API");
                let admit = |stream: UnixStream, shared: &Arc<Shared>| {
                    admit_unix(stream, shared, &api, &router);
                };
                listener
                    .serve_with(Arc::clone(&shared), std::future::pending(), admit)
                    .await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let tcp = async {
            match &self.tcp {
                Some(listener) => accept_tcp(listener, &api, &router).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::join!(unix, tcp);
    }
}

fn admit_unix(stream: UnixStream, shared: &Arc<Shared>, api: &Arc<Api>, router: &Router) {
    let privileged = match server::check_peer(&stream, shared) {
        Ok(privileged) => privileged,
        // Logged (rate-limited) by the check, as on the CLI's socket.
        Err(message) => {
            drop(tokio::spawn(refuse(stream, StatusCode::FORBIDDEN, message)));
            return;
        }
    };
    admit(stream, Transport::Unix, privileged, api, router);
}

async fn accept_tcp(listener: &TcpListener, api: &Arc<Api>, router: &Router) {
    if let Ok(addr) = listener.local_addr() {
        let observer = api.web_url.as_deref().unwrap_or("");
        info!(%addr, observer, event = "http_listening",
              "serving the HTTP API (bearer token) and the observer");
    }
    let mut failures = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                failures = 0;
                let _ = stream.set_nodelay(true);
                admit(stream, Transport::Tcp, false, api, router);
            }
            Err(e) => {
                if let Some(suppressed) = OVER_CAP.allow(Instant::now()) {
                    warn!(reason = %e, suppressed, event = "accept_failed",
                          "HTTP accept failed; backing off");
                }
                tokio::time::sleep(server::accept_backoff(failures)).await;
                failures = failures.saturating_add(1);
            }
        }
    }
}

/// Serves a connection in a task of its own, or turns it away over the cap.
fn admit<S>(stream: S, transport: Transport, privileged: bool, api: &Arc<Api>, router: &Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match api.slots.take(privileged) {
        Some(slot) => drop(tokio::spawn(connection(
            stream,
            transport,
            Arc::clone(api),
            router.clone(),
            slot,
        ))),
        None => {
            let cap = api.slots.cap();
            if let Some(suppressed) = OVER_CAP.allow(Instant::now()) {
                warn!(
                    max_connections = cap,
                    suppressed,
                    event = "connection_refused",
                    "refused an HTTP connection over the cap"
                );
            }
            let message = format!(
                "too many connections: {cap} are open, the most limits.max_connections allows; \
                 retry later"
            );
            drop(tokio::spawn(refuse(
                stream,
                StatusCode::SERVICE_UNAVAILABLE,
                message,
            )));
        }
    }
}

/// A response written without reading the request (the peer or the cap is refused before
/// anything of it costs us), then the connection is closed.
async fn refuse<S>(mut stream: S, status: StatusCode, message: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = serde_json::json!({ "error": message }).to_string();
    let retry = match status {
        StatusCode::SERVICE_UNAVAILABLE => "retry-after: 1\r\n",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {retry}connection: close\r\n\r\n",
        body.len()
    );
    let refusal = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the peer sent, so that closing does not reset the connection under it.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), refusal).await;
}

async fn connection<S>(stream: S, transport: Transport, api: Arc<Api>, router: Router, _slot: Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(transport);
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(api.shared.limits.read_timeout)
        .max_headers(64);
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(serving);
    let mut closing = api.shared.closing.clone();
    tokio::select! {
        served = serving.as_mut() => {
            if let Err(e) = served {
                debug!(reason = %e, "an HTTP connection ended with an error");
            }
            return;
        }
        _ = closing.wait_for(|&closing| closing) => {}
    }
    // Shutting down: the request being answered finishes (waits and streams end on their
    // own at close), then the connection closes.
    serving.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(2), serving).await;
}

/// Every route, behind the token check (TCP only), with JSON for unknown paths and methods.
pub fn router(api: Arc<Api>) -> Router {
    let body_limit = api.shared.limits.max_frame_bytes;
    Router::new()
        .route("/v1/jobs", post(api::submit).get(api::list))
        .route("/v1/jobs/{id}", get(api::result).delete(api::cancel))
        .route("/v1/status", get(api::status))
        .route("/v1/tree", get(api::tree))
        .route("/v1/alarms", get(api::alarms))
        .route("/v1/actors/{name}/kill", post(api::kill))
        .route("/v1/reload", post(api::reload))
        .route("/v1/events", get(events::events))
        .route("/v1/_ping", get(api::ping).head(api::ping))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics))
        .route("/v1/web", get(web::url))
        .route("/", get(web::index))
        .route("/web/app.js", get(web::script))
        .route("/web/style.css", get(web::style))
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(Arc::clone(&api), authorize))
        .layer(middleware::map_response(api_version))
        .with_state(api)
}

async fn api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("api-version", HeaderValue::from_static("1"));
    response
}

async fn authorize(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let over_tcp = request.extensions().get::<Transport>() == Some(&Transport::Tcp);
    // The observer's own files hold no data: the page asks for the token itself.
    let page = request.method() == Method::GET && web::ASSETS.contains(&request.uri().path());
    if over_tcp && !page {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let admitted = api.token.as_ref().is_some_and(|token| token.admits(given));
        if !admitted {
            if let Some(suppressed) = UNAUTHORIZED.allow(Instant::now()) {
                warn!(method = %request.method(), path = %request.uri().path(), suppressed,
                      token = if given.is_some() { "wrong" } else { "missing" },
                      event = "http_unauthorized", "refused an HTTP request without the token");
            }
            let mut refusal = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this listener needs Authorization: Bearer <token>; the token is in http.token \
                 in the daemon's data dir",
            )
            .into_response();
            refusal
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return refusal;
        }
    }
    next.run(request).await
}

async fn unknown_path(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no such endpoint: {method} {} (the API is described at /v1/openapi.json)",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {} (see /v1/openapi.json)",
            uri.path()
        ),
    )
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text")))]
pub async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let text = scrape::render(&api.shared).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
