//! The soak's connection, through the crate's own client (`primed::client::Connection`: the
//! peer check and the hellos) and its framing. Requests go to a writer task and responses come
//! back in order from a reader task, both on a runtime of the connection's own thread, so that
//! the soak stays a plain blocking loop that waits on a channel with a timeout.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use primed::client::{Connection, Endpoint};
use primed::protocol::{self, Request, Response};
use tokio::io::BufReader;
use tokio::net::unix::OwnedReadHalf;

use super::IO_TIMEOUT;

pub(super) struct Conn {
    /// To the writer task; dropped to end the connection.
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
    /// Responses in order; an `Err` is the last item: the connection ended (and why).
    pub(super) rx: Receiver<Result<Response, String>>,
    /// The `Err` has been received.
    pub(super) ended: bool,
}

impl Conn {
    pub(super) fn connect(socket: &Path) -> Conn {
        let (ready, connected) = mpsc::channel();
        let (responses, rx) = mpsc::channel();
        let (requests, queue) = tokio::sync::mpsc::unbounded_channel();
        let endpoint = Endpoint {
            timeout: IO_TIMEOUT,
            ..Endpoint::new(socket.to_path_buf())
        };
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the connection");
            runtime.block_on(serve(endpoint, queue, responses, ready));
        });
        match connected.recv() {
            Ok(Ok(())) => Conn {
                requests,
                rx,
                ended: false,
            },
            Ok(Err(e)) => panic!("connecting to the daemon at {}: {e}", socket.display()),
            Err(_) => panic!("the connection thread for {} died", socket.display()),
        }
    }

    pub(super) fn send(&mut self, request: &Request) -> Result<(), String> {
        self.requests
            .send(request.clone())
            .map_err(|_| "sending a request: the connection is closed".to_string())
    }
}

/// Connects, then writes what is queued until the queue or the socket closes, while a reader
/// task passes every response on.
async fn serve(
    endpoint: Endpoint,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Request>,
    responses: Sender<Result<Response, String>>,
    ready: Sender<Result<(), String>>,
) {
    let conn = match Connection::connect(&endpoint).await {
        Ok(conn) => conn,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let Connection {
        reader, mut writer, ..
    } = conn;
    let reading = tokio::spawn(read_all(reader, responses));
    while let Some(request) = queue.recv().await {
        let frame = protocol::write_frame(&mut writer, &request, protocol::MAX_FRAME_BYTES);
        if !matches!(tokio::time::timeout(IO_TIMEOUT, frame).await, Ok(Ok(()))) {
            // The daemon is gone or stuck: the reader reports how the connection ended.
            drop(queue);
            let _ = reading.await;
            return;
        }
    }
    // The soak dropped the connection: the daemon sees it closed at once.
    reading.abort();
}

async fn read_all(
    mut reader: BufReader<OwnedReadHalf>,
    responses: Sender<Result<Response, String>>,
) {
    let end = loop {
        match protocol::read_frame(&mut reader, protocol::MAX_FRAME_BYTES).await {
            Ok(Some(payload)) => match protocol::decode::<Response>(&payload) {
                Ok(response) => {
                    if responses.send(Ok(response)).is_err() {
                        return;
                    }
                }
                Err(e) => break e.to_string(),
            },
            Ok(None) => break "the daemon closed the connection".to_string(),
            Err(e) => break format!("reading a frame: {e}"),
        }
    };
    let _ = responses.send(Err(end));
}
