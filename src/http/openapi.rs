//! The OpenAPI 3 description of the API, generated from the handlers' annotations and the
//! types they send and take: served at `/v1/openapi.json`, and kept in `docs/openapi.json`
//! (a test fails when the two differ, so a change to the API shows in review).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;
use super::error::ErrorJson;
use super::events;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "primed",
        description = "The primed daemon's HTTP/JSON API: the CLI's operations for any \
            language. On the Unix socket (primed.http.sock) peers are checked by the kernel; \
            on the optional TCP listener every request needs Authorization: Bearer <token>, \
            the token being in http.token in the daemon's data dir.",
        license(name = "MIT")
    ),
    paths(
        api::submit, api::list, api::result, api::cancel, api::status, api::tree, api::alarms,
        api::kill, api::reload, api::ping, events::events, super::metrics, serve,
        super::web::url
    ),
    components(schemas(ErrorJson)),
    modifiers(&Bearer),
    tags((name = "primed"))
)]
pub struct ApiDoc;

/// The TCP listener's token, as a security scheme every operation accepts (the Unix socket
/// needs none).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document itself.
#[utoipa::path(get, path = "/v1/openapi.json",
    responses((status = 200, description = "This API's OpenAPI 3 description", body = Object)))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document as served, pretty-printed (what `docs/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
