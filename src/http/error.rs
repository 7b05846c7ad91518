//! The API's errors: one JSON shape, `{"error": "…"}`, with the CLI's own sentences, and one
//! mapping from what went wrong to a status code (documented in README and the OpenAPI file):
//! invalid input 400 or 422, an unknown id or path 404, a pruned answer 410, a job that has
//! already finished 409, busy, disk full, shutting down or a failing journal 503 with
//! `Retry-After`, a missing token 401, a refused peer 403, a body over the limit 413.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Seconds a client is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Every error the API sends: `{"error": "…"}`; a pruned job also carries its id and the
/// retention policy that let it go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorJson {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorJson,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorJson {
                error: message.into(),
                id: None,
                pruned: None,
                reason: None,
            },
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// Busy, disk full, shutting down, a journal that failed: the same request may succeed.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn pruned(id: u64, reason: String) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::GONE,
            format!("job {id} finished and was pruned: its answer is no longer kept ({reason})"),
        );
        error.body.id = Some(id);
        error.body.pruned = Some(true);
        error.body.reason = Some(reason);
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// A body that is not the JSON asked for: malformed 400, the wrong shape 422, not JSON at all
/// 415, too big 413 (axum's own mapping), each with what serde or the limit said.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}
