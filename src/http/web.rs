//! The observer: a web page at `/` (and its script and style under `/web/`), embedded in the
//! binary. The page talks only to the API, with the token that its address carries in the
//! fragment (`#token=…`, which a browser never sends), so the page itself holds no data and
//! is served without the token; everything it shows comes through `/v1` behind it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorJson};
use super::Api;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

/// Only our own script, style and API: no inline code, no other origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The paths of the page's own files, served without the token.
pub const ASSETS: [&str; 3] = ["/", "/web/app.js", "/web/style.css"];

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Where the observer is: the TCP listener's address with the token in the fragment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebJson {
    pub url: String,
}

/// The observer's address (with its token), as `primed web` prints it.
#[utoipa::path(get, path = "/v1/web",
    responses(
        (status = 200, description = "The observer's address", body = WebJson),
        (status = 404, description = "No TCP listener (serve --http-listen)", body = ErrorJson),
    ))]
pub async fn url(State(api): State<Arc<Api>>) -> Result<Json<WebJson>, ApiError> {
    api.web_url
        .clone()
        .map(|url| Json(WebJson { url }))
        .ok_or_else(|| {
            ApiError::not_found(
                "the observer is served on the TCP listener only, and there is none: start the \
                 daemon with --http-listen 127.0.0.1:PORT (or daemon.http_listen)",
            )
        })
}

/// The observer's address on `addr`.
pub fn address(addr: std::net::SocketAddr, token: &super::token::Token) -> String {
    format!("http://{addr}/#token={}", token.expose())
}
