//! systemd's readiness protocol (sd_notify): with `Type=notify`, the service manager waits for
//! `READY=1` on the datagram socket named by `$NOTIFY_SOCKET`. Without that variable (not run
//! by systemd) this does nothing. A dozen lines, so no crate.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;

/// Sends `state` (e.g. `READY=1`, `STOPPING=1`) to the service manager, if there is one.
pub fn notify(state: &str) -> io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let path = path.to_string_lossy().into_owned();
    let address = match path.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        #[cfg(not(target_os = "linux"))]
        Some(_) => return Err(io::Error::other("abstract sockets need Linux")),
        None => SocketAddr::from_pathname(&path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}
