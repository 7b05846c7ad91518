//! A client connection: connect, exchange hellos, then send requests and read responses.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::Exit;
use crate::protocol::{self, FrameError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {socket}: {source} (is `primed serve` running? see --socket / PRIMED_SOCKET)")]
    Unreachable { socket: PathBuf, source: io::Error },
    #[error("permission denied by the socket {socket}: only the daemon's user, root and its socket group may use it (ask its operator to set daemon.socket_group to a group you are in)")]
    NoPermission { socket: PathBuf },
    #[error("the daemon at {socket} {what} within {}s (it may be overloaded or stopped; see --timeout)", .timeout.as_secs_f64())]
    TimedOut {
        socket: PathBuf,
        what: &'static str,
        timeout: Duration,
    },
    #[error("refusing to talk to {socket}: it is served by uid {theirs}, not by you (uid {ours}), root or --daemon-uid / PRIMED_DAEMON_UID; someone else may have put a daemon there")]
    Impostor {
        socket: PathBuf,
        theirs: u32,
        ours: u32,
    },
    #[error("talking to the daemon: {0}")]
    Protocol(#[from] FrameError),
    #[error("the daemon closed the connection before answering everything")]
    Closed,
    #[error("the daemon answered {0}")]
    Unexpected(String),
    #[error("{0}")]
    Refused(String),
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
    #[error("cannot handle Ctrl-C: {0}")]
    Signal(io::Error),
    #[error("{0}")]
    Journal(#[from] crate::journal::JournalError),
}

impl ClientError {
    pub fn exit(&self) -> Exit {
        match self {
            ClientError::Refused(_)
            | ClientError::Journal(_)
            | ClientError::NoPermission { .. } => Exit::Failed,
            _ => Exit::Unreachable,
        }
    }
}

/// Where the daemon is, whom to trust as its server, and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub socket: PathBuf,
    /// For the connection and the hellos, and for each answer to a one-shot request.
    pub timeout: Duration,
    /// A uid besides our own and root's that may serve the socket.
    pub daemon_uid: Option<u32>,
}

impl Endpoint {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn new(socket: PathBuf) -> Endpoint {
        Endpoint {
            socket,
            timeout: Self::DEFAULT_TIMEOUT,
            daemon_uid: None,
        }
    }

    fn timed_out(&self, what: &'static str) -> ClientError {
        ClientError::TimedOut {
            socket: self.socket.clone(),
            what,
            timeout: self.timeout,
        }
    }

    /// Whether `uid` may be the daemon we talk to: ourselves, root, or the one named.
    fn trusts(&self, uid: u32) -> Result<(), ClientError> {
        // SAFETY: getuid has no preconditions and cannot fail.
        let ours = unsafe { libc::getuid() };
        if uid == ours || uid == 0 || Some(uid) == self.daemon_uid {
            return Ok(());
        }
        Err(ClientError::Impostor {
            socket: self.socket.clone(),
            theirs: uid,
            ours,
        })
    }
}

pub struct Connection {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
    /// Applied to each `recv`; `None` while waiting for jobs, which take as long as they take.
    pub answer_timeout: Option<Duration>,
    socket: PathBuf,
}

/// Pauses between connection attempts while the daemon's backlog is full.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

impl Connection {
    /// Connects, checks who serves the socket (before a byte is sent), and exchanges hellos,
    /// all within the endpoint's timeout.
    pub async fn connect(endpoint: &Endpoint) -> Result<Connection, ClientError> {
        let mut stream = Self::open_trusted(endpoint).await?;
        let hellos = async {
            // A refused client is told why after the daemon's hello, and the socket closed:
            // our hello may then meet a broken pipe, but the reason is still there to read.
            let wrote = stream.write_all(&protocol::hello()).await;
            let mut hello = [0; protocol::HELLO_LEN];
            stream
                .read_exact(&mut hello)
                .await
                .map_err(|e| ClientError::Protocol(e.into()))?;
            protocol::check_hello(hello)?;
            if let Err(e) = wrote {
                return Err(match Self::last_word(&mut stream).await {
                    Some(message) => ClientError::Refused(message),
                    None => ClientError::Protocol(e.into()),
                });
            }
            Ok(())
        };
        tokio::time::timeout(endpoint.timeout, hellos)
            .await
            .map_err(|_| endpoint.timed_out("did not say hello"))??;
        let (reader, writer) = stream.into_split();
        Ok(Connection {
            reader: BufReader::new(reader),
            writer,
            answer_timeout: Some(endpoint.timeout),
            socket: endpoint.socket.clone(),
        })
    }

    /// Connects within the endpoint's timeout and checks who serves the socket, before a byte
    /// is sent: the CLI's socket, or the HTTP API's.
    pub async fn open_trusted(endpoint: &Endpoint) -> Result<UnixStream, ClientError> {
        let connecting = Self::open(endpoint);
        let stream = tokio::time::timeout(endpoint.timeout, connecting)
            .await
            .map_err(|_| endpoint.timed_out("did not take the connection"))??;
        let credentials = stream
            .peer_cred()
            .map_err(|source| ClientError::Unreachable {
                socket: endpoint.socket.clone(),
                source,
            })?;
        endpoint.trusts(credentials.uid())?;
        Ok(stream)
    }

    /// The daemon's parting message on a connection it closed, if it left one.
    async fn last_word(stream: &mut UnixStream) -> Option<String> {
        let payload = protocol::read_frame(stream, protocol::MAX_FRAME_BYTES)
            .await
            .ok()??;
        match protocol::decode(&payload).ok()? {
            Response::Error { message } => Some(message),
            _ => None,
        }
    }

    /// Connects, retrying while the daemon's listen backlog is full (EAGAIN).
    async fn open(endpoint: &Endpoint) -> Result<UnixStream, ClientError> {
        loop {
            match UnixStream::connect(&endpoint.socket).await {
                Ok(stream) => return Ok(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(RETRY_PAUSE).await
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(ClientError::NoPermission {
                        socket: endpoint.socket.clone(),
                    })
                }
                Err(source) => {
                    return Err(ClientError::Unreachable {
                        socket: endpoint.socket.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// Sends a request. If the daemon has hung up, its last word (why it refused us) is more
    /// useful than the broken pipe, so that is read and returned instead when there is one.
    pub async fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let written =
            protocol::write_frame(&mut self.writer, request, protocol::MAX_FRAME_BYTES).await;
        match written {
            Ok(()) => Ok(()),
            Err(e) => match self.recv().await {
                Err(refused @ ClientError::Refused(_)) => Err(refused),
                _ => Err(e.into()),
            },
        }
    }

    /// The next response; an `Error` or `Failed` from the daemon becomes `ClientError::Refused`.
    pub async fn recv(&mut self) -> Result<Response, ClientError> {
        let reading = protocol::read_frame(&mut self.reader, protocol::MAX_FRAME_BYTES);
        let payload = match self.answer_timeout {
            Some(timeout) => tokio::time::timeout(timeout, reading).await.map_err(|_| {
                ClientError::TimedOut {
                    socket: self.socket.clone(),
                    what: "did not answer",
                    timeout,
                }
            })??,
            None => reading.await?,
        }
        .ok_or(ClientError::Closed)?;
        match protocol::decode(&payload)? {
            Response::Error { message } | Response::Failed { message } => {
                Err(ClientError::Refused(message))
            }
            response => Ok(response),
        }
    }

    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.send(request).await?;
        self.recv().await
    }
}
