//! A TCP forwarder that a test can cut and restore, to take a database or
//! upstream away mid-test and bring it back. Loopback only.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running forwarder from its own loopback port to a target.
#[derive(Debug, Clone)]
pub struct Forwarder {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Forwarder {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Forwarder> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target).await
    }

    /// Listens on `listen` (port 0: a free one) and forwards to `target`.
    pub async fn start_on(listen: SocketAddr, target: SocketAddr) -> std::io::Result<Forwarder> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (up, _) = watch::channel(true);
        let state = up.clone();
        // The forwarder lives as long as the runtime; it holds no work to lose.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut down = state.subscribe();
                if !*down.borrow() {
                    // Cut: refuse by closing at once.
                    drop(inbound);
                    continue;
                }
                #[allow(clippy::disallowed_methods)]
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Forwarder { addr, up })
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// Whether it is cut.
    pub fn is_cut(&self) -> bool {
        !*self.up.borrow()
    }
}
