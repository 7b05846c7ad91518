//! `GET /v1/events`: the stored supervision events since a time, then each new one as it is
//! recorded, as server-sent events (one JSON event per `data:` line), as `events --follow`.
//! A reader that does not keep up is told how many it missed rather than queued for.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use utoipa::IntoParams;

use super::error::ApiError;
use super::Api;
use crate::event::Event;
use crate::protocol::json::EventJson;

/// Events queued for one reader before the live ones are skipped (and counted).
const QUEUE: usize = 256;
/// A comment this often keeps proxies and idle timeouts from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Stored events at or after this time (ms since the Unix epoch); default: all kept.
    pub since_ms: Option<u64>,
}

/// Stored events, then live ones, as server-sent events.
#[utoipa::path(get, path = "/v1/events", params(EventsQuery),
    responses(
        (status = 200, description = "A stream of `data: {event}` lines (text/event-stream)",
            body = super::super::protocol::json::EventJson, content_type = "text/event-stream"),
        (status = 400, description = "A bad query", body = super::error::ErrorJson),
        (status = 503, description = "The event log cannot be read", body = super::error::ErrorJson),
    ))]
pub async fn events(
    State(api): State<Arc<Api>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(query) = query?;
    super::api::in_range(query.since_ms.unwrap_or(0))?;
    let ctx = &api.shared.ctx;
    // Subscribed before the read, so that no event falls between the two.
    let live = ctx.events.subscribe();
    let stored = ctx
        .events
        .stored(query.since_ms.unwrap_or(0))
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let (out, queue) = mpsc::channel(QUEUE);
    tokio::spawn(feed(stored, live, out, api.shared.closing.clone()));
    let events = stream::unfold(queue, |mut queue| async move {
        let event = queue.recv().await?;
        Some((Ok(event), queue))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .event("event")
        .json_data(EventJson::from(event))
        .unwrap_or_else(|_| SseEvent::default().comment("an event that cannot be encoded"))
}

/// Sends the stored events, then the live ones, until the reader goes or the daemon closes.
async fn feed(
    stored: Vec<Event>,
    mut live: broadcast::Receiver<Event>,
    out: mpsc::Sender<SseEvent>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let tail: Vec<Event> = stored.iter().rev().take(64).cloned().collect();
    for event in &stored {
        if out.send(sse(event)).await.is_err() {
            return;
        }
    }
    drop(stored);
    loop {
        let event = tokio::select! {
            event = live.recv() => event,
            _ = closing.wait_for(|&closing| closing) => return,
            () = out.closed() => return,
        };
        let message = match event {
            // Recorded between the subscription and the read: already sent.
            Ok(event) if tail.contains(&event) => continue,
            Ok(event) => sse(&event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                SseEvent::default().comment(format!("fell behind: {missed} events skipped"))
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if out.send(message).await.is_err() {
            return;
        }
    }
}
