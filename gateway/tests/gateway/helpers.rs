//! Shared test scaffolding: a real gateway on port 0, real mock upstreams on
//! port 0, a sink that hands each request record to the test, and clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use futures_util::StreamExt;
use gateway::record::{RecordSink, RequestRecord};
use gateway::{App, Config};
use loadtest::mock::{self, MockHandle, MockOptions};
use router::sim::SimConfig;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub const MASTER_KEY: &str = "test-master-key-0123";

/// How long a test waits for something that should happen at once.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `check` until it holds, failing the test after [`DEADLINE`].
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < until, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP client (the TLS provider installed first, as reqwest needs).
pub fn http_client() -> reqwest::Client {
    router::provider::ensure_tls_provider();
    reqwest::Client::new()
}

/// A fast, unpaced simulated model.
pub fn fast_sim() -> SimConfig {
    SimConfig {
        ttft: Duration::ZERO,
        tokens_per_second: 0.0,
        output_tokens: 8,
        ..SimConfig::default()
    }
}

/// A mock upstream on a free loopback port.
pub async fn spawn_mock(options: MockOptions) -> MockHandle {
    mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), options)
        .await
        .expect("mock upstream binds")
}

/// A mock upstream with a fast model and no faults.
pub async fn spawn_fast_mock() -> MockHandle {
    spawn_mock(MockOptions {
        sim: fast_sim(),
        ..Default::default()
    })
    .await
}

/// Config text: a server on port 0 with the test master key, then `rest`.
pub fn config_text(rest: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmaster_key = \"{MASTER_KEY}\"\nshutdown_grace = \"5s\"\n{rest}"
    )
}

/// Parses config text written by a test.
pub fn config(rest: &str) -> Config {
    Config::parse(&config_text(rest), "test.toml", &|_| None).expect("test config is valid")
}

/// Config with model `m` served by an openai-kind provider `up` at `mock`.
pub fn upstream_config(mock: &MockHandle, provider_extra: &str) -> Config {
    config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n{provider_extra}\n[models.m]\nprovider = \"up\"\nupstream_model = \"up-model\"\n",
        mock.base_url()
    ))
}

struct ChannelSink(mpsc::UnboundedSender<RequestRecord>);

impl RecordSink for ChannelSink {
    fn record(&self, record: &RequestRecord) {
        let _ = self.0.send(record.clone());
    }
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// The database the gateway uses (opened separately, for assertions).
    pub db: billing::Db,
    records: mpsc::UnboundedReceiver<RequestRecord>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    /// Holds the SQLite file and the spool.
    pub dir: tempfile::TempDir,
}

/// Starts the gateway on port 0 with `config`. A config that keeps the
/// default database and spool gets a fresh SQLite file and spool directory.
pub async fn spawn_app(mut config: Config) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    if config.database.url.expose() == gateway::config::DEFAULT_DATABASE_URL {
        let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
        config.database.url = gateway::config::Secret::new(url);
    }
    if config.ledger.spool_dir == std::path::Path::new(gateway::config::DEFAULT_SPOOL_DIR) {
        config.ledger.spool_dir = dir.path().join("spool");
    }
    // Rows reach the database quickly in tests.
    config.ledger.flush_interval = Duration::from_millis(5);
    spawn_app_in(config, dir).await
}

/// Starts the gateway with `config` as it is, keeping `dir` alive with it.
pub async fn spawn_app_in(config: Config, dir: tempfile::TempDir) -> TestApp {
    router::provider::ensure_tls_provider();
    let db = billing::Db::connect(config.database.url.expose())
        .await
        .expect("the test database opens");
    let (tx, records) = mpsc::unbounded_channel();
    let app = App::build_with_sinks(config, vec![Arc::new(ChannelSink(tx))])
        .await
        .expect("gateway builds");
    let addr = app.local_addr();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = shutdown_rx.await;
    }));
    TestApp {
        addr,
        http: http_client(),
        db,
        records,
        shutdown: Some(shutdown_tx),
        server: Some(server),
        dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A POST with the master key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(MASTER_KEY)
    }

    /// A GET with the master key.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(MASTER_KEY)
    }

    /// An admin request with the master key: its status and JSON body.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .request(method, self.url(path))
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON body"),
        )
    }

    /// A GET with `key`, its body as JSON.
    pub async fn get_json_as(&self, key: &str, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("gateway answers")
            .json()
            .await
            .expect("a JSON body")
    }

    /// POSTs a chat request.
    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// A request with the master key sent the way Anthropic's SDK sends
    /// credentials: `x-api-key` and `anthropic-version`.
    pub fn as_anthropic(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("x-api-key", MASTER_KEY)
            .header("anthropic-version", "2023-06-01")
    }

    /// POSTs a Messages request the way Anthropic's SDK does.
    pub async fn messages(&self, body: &Value) -> reqwest::Response {
        self.as_anthropic(self.http.post(self.url("/v1/messages")))
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// The next request record, waiting up to [`DEADLINE`].
    pub async fn next_record(&mut self) -> RequestRecord {
        tokio::time::timeout(DEADLINE, self.records.recv())
            .await
            .expect("a request record within the deadline")
            .expect("the record channel is open")
    }

    /// Whether a record is waiting right now.
    pub fn try_record(&mut self) -> Option<RequestRecord> {
        self.records.try_recv().ok()
    }

    /// An official-style OpenAI client pointed at the gateway.
    pub fn openai(&self) -> async_openai::Client<OpenAIConfig> {
        self.openai_with_key(MASTER_KEY)
    }

    pub fn openai_with_key(&self, key: &str) -> async_openai::Client<OpenAIConfig> {
        let config = OpenAIConfig::new()
            .with_api_base(self.url("/v1"))
            .with_api_key(key);
        async_openai::Client::with_config(config)
    }

    /// The Prometheus text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    /// Signals shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for the server to finish draining.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.begin_shutdown();
        let server = self.server.take().expect("server runs");
        tokio::time::timeout(DEADLINE, server)
            .await
            .expect("the server stops within the deadline")
            .expect("the server task does not panic")
    }
}

/// A minimal chat body for model `model`.
pub fn chat_body(model: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hello gateway"}]})
}

/// Reads an SSE response to its end; returns each event's data.
pub async fn read_sse(resp: reqwest::Response) -> Vec<String> {
    let text = tokio::time::timeout(DEADLINE, resp.text())
        .await
        .expect("the stream ends within the deadline")
        .expect("the stream reads");
    sse_data(&text)
}

/// The `data:` payloads of SSE text.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// Parses every JSON event of an SSE stream (everything but `[DONE]`).
pub fn json_events(data: &[String]) -> Vec<Value> {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("event is not JSON ({e}): {d}")))
        .collect()
}

/// Reads the next piece of a streamed body, up to the deadline.
pub async fn next_piece<S>(stream: &mut S) -> Option<bytes::Bytes>
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("a piece within the deadline")
        .map(|r| r.expect("the piece reads"))
}

impl TestApp {
    /// POSTs a Responses API request with the master key, as OpenAI's SDKs
    /// (and Codex) send it.
    pub async fn responses(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/responses")
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }
}

/// `(event name, data)` for every event of an SSE stream whose events are
/// named (Anthropic's, and the Responses API's); the name is empty when an
/// event has none.
pub fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Vec::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            let data = data.join("\n");
            let value = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
            (name, value)
        })
        .collect()
}

/// Creates an organization through the admin API (`extra` adds fields, such
/// as a budget): its id.
pub async fn create_org(app: &TestApp, name: &str, extra: Value) -> String {
    created(app, "/admin/orgs", serde_json::json!({"name": name}), extra).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a team in `org_id`: its id.
pub async fn create_team(app: &TestApp, org_id: &str, name: &str, extra: Value) -> String {
    let body = serde_json::json!({"org_id": org_id, "name": name});
    created(app, "/admin/teams", body, extra).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a key in `team_id`: its secret, and the key as created.
pub async fn create_key(app: &TestApp, team_id: &str, name: &str, extra: Value) -> (String, Value) {
    let body = serde_json::json!({"team_id": team_id, "name": name});
    let key = created(app, "/admin/keys", body, extra).await;
    (key["key"].as_str().unwrap().to_owned(), key)
}

async fn created(app: &TestApp, path: &str, mut body: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let (status, v) = app.admin(reqwest::Method::POST, path, body).await;
    assert_eq!(status, 201, "POST {path}: {v}");
    v
}

impl TestApp {
    /// A GET with `key`: its status and JSON body.
    pub async fn get_as(&self, key: &str, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("gateway answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("a JSON body"))
    }

    /// A chat request for `model` with `key`, which must succeed.
    pub async fn chat_as(&self, key: &str, model: &str) {
        let resp = self
            .http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model))
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(resp.status(), 200, "chat with {model}");
    }
}
