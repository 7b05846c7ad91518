//! `primed top`: a live terminal view of the daemon.

use super::{ClientError, Exit};
use crate::cli::ClientOpts;

pub async fn run(_opts: ClientOpts) -> Result<Exit, ClientError> {
    Ok(Exit::Ok)
}
