//! `primed web`: the observer's address, with its token, as the daemon gives it on the HTTP
//! API's socket (whose peers the kernel vouches for).

use axum::http::{Method, StatusCode};

use super::args::ClientOpts;
use super::http::HttpClient;
use super::{endpoint, ClientError, Exit};
use crate::http::error::ErrorJson;
use crate::http::web::WebJson;

pub async fn run(opts: ClientOpts) -> Result<Exit, ClientError> {
    let mut endpoint = endpoint(&opts);
    endpoint.socket = crate::config::http_socket(None, &endpoint.socket)
        .ok_or_else(|| ClientError::Unexpected("no HTTP socket".into()))?;
    let mut client = HttpClient::connect(&endpoint).await?;
    let (status, body) = client.call(Method::GET, "/v1/web", Vec::new()).await?;
    if status != StatusCode::OK {
        let error = serde_json::from_slice::<ErrorJson>(&body)
            .map_or_else(|_| String::from_utf8_lossy(&body).into_owned(), |e| e.error);
        return Err(ClientError::Refused(error));
    }
    let web: WebJson = serde_json::from_slice(&body)
        .map_err(|e| ClientError::Unexpected(format!("the observer's address: {e}")))?;
    if opts.json {
        println!("{}", serde_json::json!({ "url": web.url }));
    } else {
        println!("{}", web.url);
    }
    Ok(Exit::Ok)
}
