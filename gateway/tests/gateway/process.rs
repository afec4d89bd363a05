//! Running the real `tollgate` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::DEADLINE;

/// A `tollgate serve` child process.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every line it logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The `tollgate` binary built for these tests.
pub fn tollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

impl Gateway {
    /// Starts `tollgate serve --config PATH` and waits for it to listen.
    pub fn start(config: &Path) -> Gateway {
        Self::start_logging(config, "info")
    }

    /// Like [`Gateway::start`] with a `RUST_LOG` filter.
    pub fn start_logging(config: &Path, filter: &str) -> Gateway {
        let mut child = tollgate()
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tollgate starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        // Drain stderr for the life of the process, so logging never blocks it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + DEADLINE;
        let addr = loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("tollgate logs its address");
            if let Some(rest) = line.split("addr=").nth(1) {
                if line.contains("listening") {
                    break rest
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .parse()
                        .expect("an address");
                }
            }
        };
        Gateway { child, addr, log }
    }

    /// Kills the process outright (SIGKILL): no shutdown, no flush.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// Everything logged so far, one string.
    pub fn logged(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to the deadline.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status;
            }
            assert!(
                Instant::now() < until,
                "tollgate did not exit within the deadline"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
