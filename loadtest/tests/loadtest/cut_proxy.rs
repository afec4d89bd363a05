//! `loadtest cut-proxy` as its own process: it relays, SIGUSR1 closes
//! every open connection and refuses new ones, SIGUSR2 relays again, and
//! it relays on loopback only.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

struct Proxy {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn start(target: SocketAddr) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(["cut-proxy", "--listen", "127.0.0.1:0", "--target"])
            .arg(target.to_string())
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("loadtest starts");
        let log = lines(&mut child);
        let line = wait_for(&log, "cut proxy relaying");
        let addr = line
            .split("listen=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the proxy logs its address")
            .parse()
            .unwrap();
        Proxy { child, addr, log }
    }

    /// Sends `signal` and waits for the proxy to log `said`.
    fn signal(&self, signal: &str, said: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        wait_for(&self.log, said);
    }
}

fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_for(log: &mpsc::Receiver<String>, what: &str) -> String {
    loop {
        let line = log
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the proxy never logged '{what}'"));
        if line.contains(what) {
            return line;
        }
    }
}

/// A server that echoes whatever it reads.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Writes `msg` and reads the echo back.
async fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .expect("the echo comes back")
        .unwrap();
    assert_eq!(got, msg);
}

/// Whether the peer closed the connection (reads end, or fail) within the
/// wait.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(WAIT, s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn the_cut_proxy_relays_cuts_on_sigusr1_and_restores_on_sigusr2() {
    let proxy = Proxy::start(echo_server().await);
    let mut open = TcpStream::connect(proxy.addr).await.unwrap();
    echo(&mut open, b"before").await;

    proxy.signal("USR1", "cut:");
    assert!(closed(&mut open).await, "an open connection is closed");
    let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
    let _ = refused.write_all(b"while cut").await;
    assert!(
        closed(&mut refused).await,
        "a new connection is closed at once"
    );

    proxy.signal("USR2", "restored");
    let mut again = TcpStream::connect(proxy.addr).await.unwrap();
    echo(&mut again, b"after").await;
}

#[test]
fn the_cut_proxy_relays_on_loopback_only() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "cut-proxy",
            "--listen",
            "127.0.0.1:0",
            "--target",
            "192.0.2.1:5432",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("192.0.2.1:5432 is not a loopback address")
    );
}
