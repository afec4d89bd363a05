//! A Redis Cluster of a test's own: `redis-server` processes on loopback
//! in cluster mode, joined by `redis-cli --cluster create`, without
//! persistence, in a temporary directory.
//!
//! Each node runs under a small shell that kills it when its standard
//! input closes, so the nodes go when the cluster drops and also when the
//! test process dies without dropping it (the cluster shared by a test
//! binary lives in a static). Without `redis-server` or `redis-cli` the
//! cluster variants are skipped with a printed reason, except under `CI`,
//! where they fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the cluster may take to form, or to answer again.
const DEADLINE: Duration = Duration::from_secs(30);

/// One `redis-server` and the shell watching it.
struct Node {
    port: u16,
    pid: u32,
    shell: Child,
    /// Closing it kills the server.
    stdin: Option<ChildStdin>,
}

/// A running Redis Cluster on loopback.
pub struct TestCluster {
    nodes: Mutex<Vec<Node>>,
    ports: Vec<u16>,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("ports", &self.ports)
            .finish()
    }
}

/// Whether `program` runs here. Panics under `CI` when it does not.
fn available(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but `{program}` is not installed: the Redis Cluster tests must run in CI");
        }
        eprintln!("skipping the Redis Cluster variant: `{program}` is not installed");
    }
    ok
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A synchronous connection to one node, with timeouts (a stopped node
/// must not hang the test).
fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(conn)
}

fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    cmd.query(&mut connect(port)?)
}

/// `INFO`-style `field:value` lines: the value of `field`.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
}

impl TestCluster {
    /// The cluster every test of this process may share (three primaries),
    /// started by the first to ask; `None` when Redis is not installed
    /// outside CI. Tests keep to key prefixes of their own on it, and do
    /// not stop or kill its nodes.
    pub fn shared() -> Option<Arc<TestCluster>> {
        static SHARED: OnceLock<Option<Arc<TestCluster>>> = OnceLock::new();
        SHARED
            .get_or_init(|| TestCluster::start(3, 0, Duration::from_secs(5)).map(Arc::new))
            .clone()
    }

    /// A cluster of `primaries`, each with `replicas` replicas, whose nodes
    /// count one another as failed after `node_timeout`; `None` when Redis
    /// is not installed outside CI.
    pub fn start(primaries: usize, replicas: usize, node_timeout: Duration) -> Option<TestCluster> {
        if !available("redis-server") || !available("redis-cli") {
            return None;
        }
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = tmp.path().to_owned();
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            nodes.push(start_node(&dir, node_timeout));
        }
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let cluster = TestCluster {
            nodes: Mutex::new(nodes),
            ports,
            dir,
            _tmp: Some(tmp),
        };
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_until_ok(&cluster.ports);
        if replicas > 0 {
            cluster.wait_for_replicas();
        }
        Some(cluster)
    }

    /// Every node's URL, comma-separated: what `[redis] url` takes for a
    /// cluster.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ports of the nodes, primaries and replicas alike.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Waits until every node of `ports` says the cluster is ok.
    fn wait_until_ok(&self, ports: &[u16]) {
        let until = Instant::now() + DEADLINE;
        for &port in ports {
            loop {
                let info: String =
                    query(port, redis::cmd("CLUSTER").arg("INFO")).unwrap_or_default();
                if field(&info, "cluster_state") == Some("ok")
                    && field(&info, "cluster_slots_ok") == Some("16384")
                {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "the cluster on {:?} is not ok: {info}",
                    self.ports
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Waits until every replica is in sync with its primary.
    fn wait_for_replicas(&self) {
        let until = Instant::now() + DEADLINE;
        for &port in &self.ports {
            loop {
                let info: String =
                    query(port, redis::cmd("INFO").arg("replication")).unwrap_or_default();
                let role = field(&info, "role");
                if role == Some("master") || field(&info, "master_link_status") == Some("up") {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "replica {port} never synced: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The node that serves `key` now: the primary of its slot (the
    /// others answer `MOVED`).
    pub fn primary_of(&self, key: &str) -> u16 {
        self.live()
            .into_iter()
            .find(|&p| query::<i64>(p, redis::cmd("EXISTS").arg(key)).is_ok())
            .unwrap_or_else(|| panic!("no primary serves {key}"))
    }

    /// Waits until the primary of `key` has passed every write to its
    /// replicas.
    pub fn wait_replicated(&self, key: &str) {
        let primary = self.primary_of(key);
        let until = Instant::now() + DEADLINE;
        loop {
            let info: String =
                query(primary, redis::cmd("INFO").arg("replication")).unwrap_or_default();
            let offset = field(&info, "master_repl_offset").unwrap_or("0");
            let replicas: Vec<&str> = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("offset="))
                .collect();
            if !replicas.is_empty()
                && replicas
                    .iter()
                    .all(|l| l.contains(&format!("offset={offset},")))
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "the replicas of {primary} never caught up: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The ports of nodes still running.
    fn live(&self) -> Vec<u16> {
        lock(&self.nodes)
            .iter()
            .filter(|n| n.stdin.is_some())
            .map(|n| n.port)
            .collect()
    }

    fn signal(&self, signal: &str, ports: Option<&[u16]>) {
        for n in lock(&self.nodes).iter() {
            if ports.is_some_and(|p| !p.contains(&n.port)) || n.stdin.is_none() {
                continue;
            }
            let ok = Command::new("kill")
                .args([signal, &n.pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {signal} {}", n.pid);
        }
    }

    /// Stops every node (SIGSTOP): the cluster stops answering, as across
    /// a network partition, its state kept.
    pub fn pause(&self) {
        self.signal("-STOP", None);
    }

    /// Lets every node run again (SIGCONT) and waits until the cluster is
    /// ok.
    pub fn resume(&self) {
        self.signal("-CONT", None);
        self.wait_until_ok(&self.live());
    }

    /// Kills one node outright (SIGKILL).
    pub fn kill(&self, port: u16) {
        self.signal("-KILL", Some(&[port]));
        let mut nodes = lock(&self.nodes);
        if let Some(n) = nodes.iter_mut().find(|n| n.port == port) {
            n.stdin.take();
            let _ = n.shell.wait();
        }
    }

    /// The keys matching `pattern` on every primary.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut all = Vec::new();
        for port in self.live() {
            let info: String =
                query(port, redis::cmd("INFO").arg("replication")).unwrap_or_default();
            if field(&info, "role") != Some("master") {
                continue;
            }
            let keys: Vec<String> =
                query(port, redis::cmd("KEYS").arg(pattern)).unwrap_or_default();
            all.extend(keys);
        }
        all.sort();
        all
    }

    /// Deletes the keys matching `pattern`, node by node.
    pub fn delete(&self, pattern: &str) {
        for port in self.live() {
            let Ok(mut conn) = connect(port) else {
                continue;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for k in keys {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&k).query(&mut conn);
            }
        }
    }

    /// Makes every node forget its loaded scripts, as a restart does.
    pub fn forget_scripts(&self) {
        for port in self.live() {
            let _: redis::RedisResult<String> = query(port, redis::cmd("SCRIPT").arg("FLUSH"));
        }
    }

    /// The slot Redis itself gives `key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        self.live()
            .iter()
            .find_map(|&p| query(p, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).ok())
            .expect("a node answers")
    }

    /// Where the nodes keep their files and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts one node in `dir` on free ports, waiting until it answers; a
/// port taken meanwhile is retried with others.
fn start_node(dir: &Path, node_timeout: Duration) -> Node {
    for _ in 0..5 {
        let (port, bus) = (free_port(), free_port());
        if port == bus {
            continue;
        }
        let conf = dir.join(format!("nodes-{port}.conf"));
        let log = dir.join(format!("{port}.log"));
        // The shell starts the server, says its pid, and kills it when its
        // standard input closes (the cluster dropped, or this process gone).
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(concat!(
                r#"redis-server "$@" >/dev/null 2>&1 & echo $!; read _; kill -9 $! 2>/dev/null; "#,
                // Its own files only: the other nodes still write theirs.
                r#"wait; rm -f "$CONF" "$LOG"; rmdir "$DIR" 2>/dev/null; exit 0"#
            ))
            .arg("sh")
            .args(["--port", &port.to_string()])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(&conf)
            .args([
                "--cluster-node-timeout",
                &node_timeout.as_millis().to_string(),
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .env("CONF", &conf)
            .env("LOG", &log)
            .env("DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh starts");
        let stdin = shell.stdin.take();
        let mut line = String::new();
        let stdout = shell.stdout.take().expect("stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the shell says the server's pid");
        let pid: u32 = line.trim().parse().expect("a pid");
        let until = Instant::now() + Duration::from_secs(10);
        let up = loop {
            if query::<String>(port, &redis::cmd("PING")).is_ok() {
                break true;
            }
            let gone = !Command::new("kill")
                .args(["-0", &pid.to_string()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if gone || Instant::now() > until {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if up {
            return Node {
                port,
                pid,
                shell,
                stdin,
            };
        }
        drop(stdin);
        let _ = shell.wait();
    }
    panic!(
        "redis-server did not start in cluster mode (see the logs in {})",
        dir.display()
    );
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // SIGKILL ends stopped nodes too.
        let mut nodes = lock(&self.nodes);
        for n in nodes.iter_mut() {
            let _ = Command::new("kill")
                .args(["-KILL", &n.pid.to_string()])
                .stderr(Stdio::null())
                .status();
            n.stdin.take();
            let _ = n.shell.wait();
        }
    }
}
