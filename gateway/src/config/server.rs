//! `[server]`: where the gateway listens, who may call it, and how long a
//! client may take over each part of a connection before it is cut.

use std::net::SocketAddr;
use std::time::Duration;

use super::raw::RawServer;
use super::{Checker, Secret};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default request body limit: 16 MiB, room for image-laden prompts.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The default shutdown grace period.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The default time for a whole request head: ample for any client, short
/// enough that a connection trickling its headers is not held for long.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time for a whole request body: a full 16 MiB body needs
/// about 2.2 Mbit/s; everyday prompts arrive in milliseconds.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The default time an idle keep-alive connection stays open: longer than
/// the 60 s idle timeout of common load balancers, so that the balancer
/// closes first and never sends a request on a connection being closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// The default time a write to a client may make no progress.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on open client connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
/// The default cap on request body bytes being parsed, translated and sent
/// upstream at once: with the ~6× a parsed and translated body takes while
/// it is worked on, about 1.5 GiB at most, and room for hundreds of
/// agents' 200,000-token requests at once.
pub const DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT: u64 = 256 * 1024 * 1024;
/// The default time a request waits for room under that cap.
pub const DEFAULT_REQUEST_BYTES_WAIT: Duration = Duration::from_secs(30);

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The Bearer token accepted on every endpoint.
    pub master_key: Secret,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Connection limits and timeouts.
    pub connections: ConnectionLimits,
    /// The cap on request bytes being worked on at once.
    pub request_bytes: RequestBytes,
    /// Why the master key is weak, when it is (allowed only on a loopback
    /// address, and warned about at start and by `check-config`).
    pub weak_master_key: Option<String>,
}

/// How long a client may take over each part of a connection, and how many
/// connections may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head (request line and headers) must arrive whole within
    /// this: counted from the connection's accept for its first request,
    /// and from the first byte of each later one. Else the connection is
    /// closed.
    pub header_read_timeout: Duration,
    /// A request body must arrive whole within this of its head; else 408
    /// and the connection is closed.
    pub body_read_timeout: Duration,
    /// A connection with no request in progress, whose client has sent
    /// nothing of a next request, is closed after this.
    pub idle_timeout: Duration,
    /// A write to the client that makes no progress for this long (a
    /// client that stopped reading) closes the connection.
    pub write_timeout: Duration,
    /// At most this many client connections are open; further ones wait
    /// in the listen backlog until one closes.
    pub max_connections: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A cap on the bytes of proxied request bodies being parsed, translated
/// and sent upstream at once (from the body's arrival until the upstream's
/// answer begins): a parsed and translated body takes several times its
/// size, so this is what bounds that memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBytes {
    pub max_in_flight: u64,
    /// How long a request waits for room before a 503.
    pub wait: Duration,
}

impl Default for RequestBytes {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT,
            wait: DEFAULT_REQUEST_BYTES_WAIT,
        }
    }
}

/// The validated table.
pub(super) fn server(c: &mut Checker, raw: &RawServer) -> ServerConfig {
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse().unwrap_or_else(|_| {
        c.fail(
            "server.listen",
            format!("'{listen_text}' is not an address like \"127.0.0.1:8080\""),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let master_key = match raw.master_key.as_deref().map(str::trim) {
        None => {
            c.fail(
                "server.master_key",
                "is required (the Bearer token that may call every endpoint)",
            );
            Secret::new("")
        }
        Some(k) if k.len() < 8 => {
            c.fail("server.master_key", "must be at least 8 characters long");
            Secret::new("")
        }
        Some(k) => Secret::new(k),
    };
    let weak_master_key = weakness(master_key.expose());
    if let Some(why) = &weak_master_key {
        if !listen.ip().is_loopback() {
            c.fail(
                "server.master_key",
                format!(
                    "{why}, and Tollgate listens on {listen}, beyond this machine: the master key \
                     can do everything. Set a random one, e.g. TOLLGATE_MASTER_KEY=$(openssl rand \
                     -hex 32), or listen on 127.0.0.1 only"
                ),
            );
        }
    }
    let max_body_bytes = match raw.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(0) => {
            c.fail("server.max_body_bytes", "must be larger than zero");
            DEFAULT_MAX_BODY_BYTES
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let shutdown_grace = c.duration(
        "server.shutdown_grace".into(),
        raw.shutdown_grace.as_deref(),
        DEFAULT_SHUTDOWN_GRACE,
    );
    ServerConfig {
        listen,
        master_key,
        max_body_bytes,
        shutdown_grace,
        connections: connection_limits(c, raw),
        request_bytes: request_bytes(c, raw),
        weak_master_key,
    }
}

/// The shortest master key not called weak.
pub const MIN_STRONG_KEY_CHARS: usize = 16;
/// The least entropy (bits, from the key's own character frequencies) a
/// master key must show.
const MIN_KEY_BITS: f64 = 48.0;

/// Master keys anyone could guess: common passwords, other gateways'
/// documented defaults, and every key Tollgate's own examples use.
const KNOWN_KEYS: &[&str] = &[
    "tollgate-dev-key",
    "password",
    "password1",
    "12345678",
    "123456789",
    "1234567890",
    "changeme",
    "change-me",
    "changeit",
    "letmein",
    "qwertyuiop",
    "secret",
    "admin",
    "master-key",
    "masterkey",
    "sk-1234",
    "sk-12345678",
];

/// Why `key` is weak (publicly known, short, or low in entropy), if it is.
pub fn weakness(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    if KNOWN_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
        return Some("the master key is a publicly known one".into());
    }
    let chars = key.chars().count();
    if chars < MIN_STRONG_KEY_CHARS {
        return Some(format!(
            "the master key is short ({chars} characters; at least {MIN_STRONG_KEY_CHARS} are needed)"
        ));
    }
    let mut counts = std::collections::HashMap::new();
    for ch in key.chars() {
        *counts.entry(ch).or_insert(0usize) += 1;
    }
    let n = chars as f64;
    let per_char: f64 = counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    let bits = per_char * n;
    (bits < MIN_KEY_BITS).then(|| {
        format!("the master key is low in entropy (about {bits:.0} bits; at least {MIN_KEY_BITS:.0} are needed)")
    })
}

fn request_bytes(c: &mut Checker, raw: &RawServer) -> RequestBytes {
    let d = RequestBytes::default();
    let max_in_flight = match raw.max_request_bytes_in_flight {
        None => d.max_in_flight,
        Some(0) => {
            c.fail(
                "server.max_request_bytes_in_flight",
                "must be larger than zero",
            );
            d.max_in_flight
        }
        Some(n) => n,
    };
    let wait = c.duration(
        "server.request_bytes_wait".into(),
        raw.request_bytes_wait.as_deref(),
        d.wait,
    );
    RequestBytes {
        max_in_flight,
        wait,
    }
}

fn connection_limits(c: &mut Checker, raw: &RawServer) -> ConnectionLimits {
    let d = ConnectionLimits::default();
    let mut timeout = |key: &str, value: &Option<String>, default: Duration| {
        c.duration(format!("server.{key}"), value.as_deref(), default)
    };
    let header_read_timeout = timeout(
        "header_read_timeout",
        &raw.header_read_timeout,
        d.header_read_timeout,
    );
    let body_read_timeout = timeout(
        "body_read_timeout",
        &raw.body_read_timeout,
        d.body_read_timeout,
    );
    let idle_timeout = timeout("idle_timeout", &raw.idle_timeout, d.idle_timeout);
    let write_timeout = timeout("write_timeout", &raw.write_timeout, d.write_timeout);
    let max_connections = match raw.max_connections {
        None => d.max_connections,
        Some(0) => {
            c.fail(
                "server.max_connections",
                "must be at least 1 (one connection per client is the least that works)",
            );
            d.max_connections
        }
        Some(n) => u32::try_from(n).unwrap_or_else(|_| {
            c.fail(
                "server.max_connections",
                format!("must be at most {}", u32::MAX),
            );
            d.max_connections
        }),
    };
    ConnectionLimits {
        header_read_timeout,
        body_read_timeout,
        idle_timeout,
        write_timeout,
        max_connections,
    }
}
