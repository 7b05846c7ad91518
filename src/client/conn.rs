//! A client connection: connect, exchange hellos, then send requests and read responses.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::Exit;
use crate::protocol::{self, FrameError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {socket}: {source} (is `primed serve` running? see --socket / PRIMED_SOCKET)")]
    Unreachable { socket: PathBuf, source: io::Error },
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
            ClientError::Refused(_) | ClientError::Journal(_) => Exit::Failed,
            _ => Exit::Unreachable,
        }
    }
}

pub struct Connection {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Connection {
    pub async fn connect(socket: &Path) -> Result<Connection, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            socket: socket.to_path_buf(),
            source,
        };
        let mut stream = UnixStream::connect(socket).await.map_err(unreachable)?;
        stream
            .write_all(&protocol::hello())
            .await
            .map_err(unreachable)?;
        let mut hello = [0; protocol::HELLO_LEN];
        stream
            .read_exact(&mut hello)
            .await
            .map_err(|e| ClientError::Protocol(e.into()))?;
        protocol::check_hello(hello)?;
        let (reader, writer) = stream.into_split();
        Ok(Connection {
            reader: BufReader::new(reader),
            writer,
        })
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
        let payload = protocol::read_frame(&mut self.reader, protocol::MAX_FRAME_BYTES)
            .await?
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
