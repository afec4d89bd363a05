//! `loadtest cut-proxy`: a [`Forwarder`] as its own process, between a
//! gateway and a database (or any TCP service) on loopback, that a script
//! cuts with SIGUSR1 (every open connection closed, new ones closed as
//! soon as they are accepted) and restores with SIGUSR2. It stops on
//! SIGTERM or SIGINT.

use std::net::SocketAddr;

use tokio::signal::unix::{signal, SignalKind};

use crate::forward::Forwarder;

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum CutProxyError {
    /// Only loopback addresses are relayed.
    #[error("{0} is not a loopback address: the cut proxy only relays on loopback")]
    NotLoopback(SocketAddr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Relays `listen` to `target` until SIGTERM or SIGINT, cutting on SIGUSR1
/// and restoring on SIGUSR2. Each change is logged on stderr.
pub async fn serve(listen: SocketAddr, target: SocketAddr) -> Result<(), CutProxyError> {
    for addr in [listen, target] {
        if !addr.ip().is_loopback() {
            return Err(CutProxyError::NotLoopback(addr));
        }
    }
    let (mut cut, mut restore) = (
        signal(SignalKind::user_defined1())?,
        signal(SignalKind::user_defined2())?,
    );
    let (mut term, mut int) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    let fwd = Forwarder::start_on(listen, target).await?;
    tracing::info!(listen = %fwd.addr(), %target, "cut proxy relaying");
    loop {
        tokio::select! {
            _ = cut.recv() => {
                fwd.cut();
                tracing::info!(listen = %fwd.addr(), "cut: connections closed, new ones refused");
            }
            _ = restore.recv() => {
                fwd.restore();
                tracing::info!(listen = %fwd.addr(), "restored: relaying again");
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    Ok(())
}
