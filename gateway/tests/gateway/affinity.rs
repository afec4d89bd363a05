//! Cache affinity end to end: a session keeps to the candidate that served
//! its previous request on a route where the strategy alone would move it,
//! moves when that candidate fails, has its breaker open or lacks what a
//! request needs, is priced with its own cache share under `cheapest`, is
//! forgotten after the idle time, and is shared by replicas through Redis.

use std::time::Duration;

use billing::testing::TestRedis;
use loadtest::mock::{Faults, MockHandle, MockOptions};
use router::sim::SimConfig;
use serde_json::{json, Value};

use crate::helpers::*;

/// A fast mock that caches each session's repeated prompt prefix.
fn caching() -> MockOptions {
    MockOptions {
        sim: SimConfig {
            prefix_cache: true,
            ..fast_sim()
        },
        ..Default::default()
    }
}

fn failing() -> MockOptions {
    MockOptions {
        faults: Faults {
            status: Some(500),
            ..Default::default()
        },
        ..caching()
    }
}

/// Providers `p0`, `p1` at `mocks`, models `m0` (`m0_extra` added) and
/// `m1` (`m1_extra`), then `rest` (the route, `[router]`, ...).
fn two_models(mocks: [&MockHandle; 2], extra: [&str; 2], rest: &str) -> String {
    let mut text = String::new();
    for (i, mock) in mocks.iter().enumerate() {
        text.push_str(&format!(
            "[providers.p{i}]\nkind = \"openai\"\nbase_url = \"{}\"\n\
             [models.m{i}]\nprovider = \"p{i}\"\n{}\n",
            mock.base_url(),
            extra[i]
        ));
    }
    text.push_str(rest);
    text
}

const PLAIN: &str = "input_per_mtok = 1.0\noutput_per_mtok = 1.0";
const WITH_TOOLS: &str = "input_per_mtok = 1.0\noutput_per_mtok = 1.0\ncapabilities = [\"tools\"]";
const NO_TOOLS: &str = "input_per_mtok = 1.0\noutput_per_mtok = 1.0\ncapabilities = []";

/// What one turn's answer said.
#[derive(Debug)]
struct Turn {
    /// The provider that answered.
    served: String,
    /// `x-tollgate-affinity`, if present.
    affinity: Option<String>,
    attempts: String,
    /// The assistant's answer, to append to the conversation.
    answer: String,
}

/// An agent session: a conversation that grows by each answer and a new
/// user message, sent with `x-tollgate-session`.
struct Session {
    id: String,
    messages: Vec<Value>,
}

impl Session {
    fn new(id: &str) -> Self {
        Self {
            id: id.into(),
            messages: vec![
                json!({"role": "system", "content": format!("You are agent {id}. {}", "context ".repeat(1400))}),
            ],
        }
    }

    /// Sends the next turn (`content` as the user's message, `extra` merged
    /// into the body) to `app`'s route `auto`.
    async fn turn(&mut self, app: &TestApp, content: Value, extra: Value) -> Turn {
        self.messages
            .push(json!({"role": "user", "content": content}));
        let mut body = json!({"model": "auto", "messages": self.messages});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let resp = app
            .post("/v1/chat/completions")
            .header("x-tollgate-session", &self.id)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(resp.status(), 200, "turn of {}", self.id);
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (served, affinity, attempts) = (
            header("x-tollgate-provider").unwrap(),
            header("x-tollgate-affinity"),
            header("x-tollgate-attempts").unwrap(),
        );
        let v: Value = resp.json().await.unwrap();
        let answer = v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.messages
            .push(json!({"role": "assistant", "content": answer}));
        Turn {
            served,
            affinity,
            attempts,
            answer,
        }
    }

    async fn say(&mut self, app: &TestApp, text: &str) -> Turn {
        self.turn(app, json!(text), json!({})).await
    }

    /// A turn that declares a tool, which only a model with `tools` can
    /// take (the turns after it declare none).
    async fn with_tools(&mut self, app: &TestApp) -> Turn {
        let tools = json!({"tools": [{"type": "function", "function": {
            "name": "read_file", "parameters": {"type": "object", "properties": {}}}}]});
        self.turn(app, json!("look at the repository"), tools).await
    }
}

fn metric(text: &str, route: &str, outcome: &str) -> u64 {
    let series = format!("tollgate_affinity_total{{outcome=\"{outcome}\",route=\"{route}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn a_session_stays_on_its_candidate_where_the_strategy_would_move_it() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    let app = spawn_app(config(&two_models(
        [&a, &b],
        [PLAIN, PLAIN],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [1, 1]\n\
         [routes.\"auto-off\"]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [1, 1]\naffinity = false\n",
    )))
    .await;
    let mut s = Session::new("holds");
    let first = s.say(&app, "start").await;
    assert_eq!(first.affinity, None, "nothing was remembered yet");
    for n in 2..=12 {
        let t = s.say(&app, &format!("turn {n}")).await;
        // A fair coin would have moved it with odds of 1 - 2^-11.
        assert_eq!(t.served, first.served, "turn {n}");
        assert_eq!(t.affinity.as_deref(), Some("kept"), "turn {n}");
        assert_eq!(t.attempts, "1");
        assert!(!t.answer.is_empty());
    }
    // Other sessions are drawn by weight, so they spread over both.
    let mut served = std::collections::BTreeSet::new();
    for n in 0..24 {
        served.insert(
            Session::new(&format!("other-{n}"))
                .say(&app, "hi")
                .await
                .served,
        );
    }
    assert_eq!(served.len(), 2, "new sessions go to both candidates");
    // With affinity off, the strategy alone moves a session.
    let mut off = Session::new("off");
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..24 {
        let mut body = json!({"model": "auto-off", "messages": off.messages.clone()});
        body["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "user", "content": format!("turn {n}")}));
        let resp = app
            .post("/v1/chat/completions")
            .header("x-tollgate-session", "off")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers().get("x-tollgate-affinity"), None);
        seen.insert(
            resp.headers()["x-tollgate-provider"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        off.messages = body["messages"].as_array().unwrap().clone();
    }
    assert_eq!(seen.len(), 2, "without affinity the session moves");
    let m = app.metrics().await;
    assert_eq!(metric(&m, "auto", "kept"), 11, "{m}");
    assert_eq!(metric(&m, "auto", "new"), 25);
    assert_eq!(metric(&m, "auto-off", "new"), 0);
}

#[tokio::test]
async fn a_failing_candidate_moves_the_session_and_it_stays_moved() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    // m1 weighs nothing: the strategy alone always tries m0 first.
    let app = spawn_app(config(&two_models(
        [&a, &b],
        [PLAIN, PLAIN],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [1, 0]\n\
         [router]\nbreaker_failures = 10\n",
    )))
    .await;
    let mut s = Session::new("fails");
    assert_eq!(s.say(&app, "start").await.served, "p0");
    a.set_options(failing());
    let t = s.say(&app, "next").await;
    assert_eq!(
        (
            t.served.as_str(),
            t.affinity.as_deref(),
            t.attempts.as_str()
        ),
        ("p1", Some("moved"), "2"),
        "the fallback serves, and the session moves"
    );
    a.set_options(caching());
    for n in 0..4 {
        let t = s.say(&app, &format!("turn {n}")).await;
        assert_eq!(
            (
                t.served.as_str(),
                t.affinity.as_deref(),
                t.attempts.as_str()
            ),
            ("p1", Some("kept"), "1"),
            "m0 is healthy again, and the session stays where its cache is"
        );
    }
    // A session that never moved still goes to m0.
    assert_eq!(Session::new("fresh").say(&app, "hi").await.served, "p0");
}

#[tokio::test]
async fn an_open_breaker_moves_the_session_without_trying_its_candidate() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    let app = spawn_app(config(&two_models(
        [&a, &b],
        [PLAIN, PLAIN],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [1, 0]\n\
         [router]\nbreaker_failures = 1\nbreaker_cooldown = \"60s\"\n",
    )))
    .await;
    let mut s = Session::new("breaker");
    assert_eq!(s.say(&app, "start").await.served, "p0");
    // Another request finds m0 failing: its breaker opens.
    a.set_options(failing());
    assert_eq!(app.chat(chat_body("auto")).await.status(), 200);
    a.set_options(caching());
    let t = s.say(&app, "next").await;
    assert_eq!(
        (
            t.served.as_str(),
            t.affinity.as_deref(),
            t.attempts.as_str()
        ),
        ("p1", Some("moved"), "1")
    );
    assert_eq!(a.request_count(), 2, "m0 was not tried while open");
}

#[tokio::test]
async fn a_candidate_lacking_what_a_request_needs_moves_the_session() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    // m0 can call tools, m1 cannot; the strategy alone always picks m1.
    let app = spawn_app(config(&two_models(
        [&a, &b],
        [WITH_TOOLS, NO_TOOLS],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [0, 1]\n",
    )))
    .await;
    let mut s = Session::new("vision");
    assert_eq!(s.say(&app, "start").await.served, "p1");
    let t = s.with_tools(&app).await;
    assert_eq!(
        (t.served.as_str(), t.affinity.as_deref()),
        ("p0", Some("moved"))
    );
    for n in 0..3 {
        let t = s.say(&app, &format!("and then {n}")).await;
        assert_eq!(
            (t.served.as_str(), t.affinity.as_deref()),
            ("p0", Some("kept")),
            "no tools again: the session stays where its context is cached"
        );
    }
}

#[tokio::test]
async fn cheapest_keeps_a_session_while_its_cache_pays_and_moves_it_when_not() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(failing()).await);
    // m1 lists 5% cheaper input and half-price output; cached input is a
    // tenth of input on both.
    let app = spawn_app(config(&two_models(
        [&a, &b],
        [
            "input_per_mtok = 1.0\ncached_input_per_mtok = 0.1\noutput_per_mtok = 1.0",
            "input_per_mtok = 0.95\ncached_input_per_mtok = 0.095\noutput_per_mtok = 0.5",
        ],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"cheapest\"\n\
         [router]\nbreaker_failures = 10\n",
    )))
    .await;
    let short = json!({"max_tokens": 100});
    let mut s = Session::new("cheapest");
    // m1 fails at first: the session starts on m0 and its context is cached there.
    let t = s.turn(&app, json!("start"), short.clone()).await;
    assert_eq!((t.served.as_str(), t.attempts.as_str()), ("p0", "2"));
    let t = s.turn(&app, json!("more"), short.clone()).await;
    assert_eq!(t.served, "p0");
    b.set_options(caching());
    // Priced with the session's cache share (most of the prompt), m0 is
    // cheaper than m1 reading the whole context afresh.
    for n in 0..3 {
        let t = s
            .turn(&app, json!(format!("turn {n}")), short.clone())
            .await;
        assert_eq!(
            (
                t.served.as_str(),
                t.affinity.as_deref(),
                t.attempts.as_str()
            ),
            ("p0", Some("kept"), "1"),
            "turn {n}"
        );
    }
    // A request that wants a long answer: m1's cheaper output outweighs
    // the whole context at its input price.
    let t = s
        .turn(&app, json!("write at length"), json!({"max_tokens": 4000}))
        .await;
    assert_eq!(
        (t.served.as_str(), t.affinity.as_deref()),
        ("p1", Some("moved"))
    );
    let t = s.turn(&app, json!("thanks"), short.clone()).await;
    assert_eq!(
        (t.served.as_str(), t.affinity.as_deref()),
        ("p1", Some("kept"))
    );
    // Without a session, list prices decide.
    assert_eq!(
        app.chat(chat_body("auto")).await.headers()["x-tollgate-provider"],
        "p1"
    );
}

#[tokio::test]
async fn a_session_is_forgotten_after_the_idle_time() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    let app = spawn_app(config(&two_models(
        [&a, &b],
        [WITH_TOOLS, NO_TOOLS],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [0, 1]\n\
         [router]\naffinity_idle = \"1s\"\n",
    )))
    .await;
    let mut s = Session::new("idle");
    s.say(&app, "start").await;
    assert_eq!(s.with_tools(&app).await.served, "p0");
    assert_eq!(
        s.say(&app, "soon after").await.affinity.as_deref(),
        Some("kept")
    );
    // The time passing is what is under test.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = s.say(&app, "much later").await;
    assert_eq!(
        (t.served.as_str(), t.affinity),
        ("p1", None),
        "forgotten: the strategy decides"
    );
}

/// A replica of route `auto` (m0 with tools, m1 without, the strategy
/// alone always picking m1) sharing affinity through Redis at `url`.
async fn replica(mocks: [&MockHandle; 2], url: &str, mode: &str, prefix: &str) -> TestApp {
    spawn_app(config(&two_models(
        mocks,
        [WITH_TOOLS, NO_TOOLS],
        &format!(
            "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [0, 1]\n\
             [redis]\nurl = \"{url}\"\nmode = \"{mode}\"\nprefix = \"{prefix}\"\ntimeout = \"2s\"\n"
        ),
    )))
    .await
}

/// The values of every affinity key under `r`'s prefix.
fn affinity_values(r: &TestRedis) -> Vec<String> {
    let keys: Vec<String> = r
        .keys()
        .into_iter()
        .filter(|k| k.contains(":affinity:"))
        .collect();
    let get = |conn: &mut dyn redis::ConnectionLike| -> Vec<String> {
        keys.iter()
            .filter_map(|k| {
                redis::cmd("GET")
                    .arg(k)
                    .query::<Option<String>>(conn)
                    .ok()?
            })
            .collect()
    };
    match &r.cluster {
        Some(_) => {
            let nodes: Vec<&str> = r.url.split(',').collect();
            let client = redis::cluster::ClusterClient::new(nodes).unwrap();
            get(&mut client.get_connection().unwrap())
        }
        None => get(&mut redis::Client::open(r.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()),
    }
}

async fn replicas_agree_through(r: TestRedis) {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    let mode = if r.cluster.is_some() {
        "cluster"
    } else {
        "single"
    };
    let one = replica([&a, &b], &r.url, mode, &r.prefix).await;
    let two = replica([&a, &b], &r.url, mode, &r.prefix).await;
    let mut s = Session::new("replicas");
    assert_eq!(s.say(&one, "start").await.served, "p1");
    assert_eq!(s.with_tools(&one).await.served, "p0");
    // The update is written after the answer, off its path.
    eventually("the move reaches Redis", async || {
        affinity_values(&r).iter().any(|v| v.contains("\"m0\""))
    })
    .await;
    // The next turn reaches the other replica, which never saw the session.
    let t = s.say(&two, "next, elsewhere").await;
    assert_eq!(
        (t.served.as_str(), t.affinity.as_deref()),
        ("p0", Some("kept"))
    );
    let t = s.say(&one, "and back").await;
    assert_eq!(
        (t.served.as_str(), t.affinity.as_deref()),
        ("p0", Some("kept"))
    );
    // Another session, on the second replica only, still follows the weights.
    assert_eq!(Session::new("fresh").say(&two, "hi").await.served, "p1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_keep_a_session_on_one_candidate_through_redis() {
    let Some(r) = TestRedis::new() else { return };
    replicas_agree_through(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_keep_a_session_on_one_candidate_through_a_redis_cluster() {
    let Some(r) = TestRedis::cluster() else {
        return;
    };
    replicas_agree_through(r).await;
}

#[tokio::test]
async fn a_replica_keeps_sessions_itself_while_redis_cannot_be_reached() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    // Nothing listens on port 9 of loopback: every call is refused at once.
    let app = replica([&a, &b], "redis://127.0.0.1:9", "single", "tollgate-test").await;
    let mut s = Session::new("no-redis");
    assert_eq!(s.say(&app, "start").await.served, "p1");
    assert_eq!(s.with_tools(&app).await.served, "p0");
    let t = s.say(&app, "next").await;
    assert_eq!(
        (t.served.as_str(), t.affinity.as_deref()),
        ("p0", Some("kept"))
    );
}

#[tokio::test]
async fn a_streamed_answer_keeps_its_session_too() {
    let (a, b) = (spawn_mock(caching()).await, spawn_mock(caching()).await);
    let app = spawn_app(config(&two_models(
        [&a, &b],
        [WITH_TOOLS, NO_TOOLS],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"weighted\"\nweights = [0, 1]\n",
    )))
    .await;
    let tools = json!([{"type": "function", "function": {
        "name": "read_file", "parameters": {"type": "object", "properties": {}}}}]);
    let stream = |body: Value| {
        app.post("/v1/chat/completions")
            .header("x-tollgate-session", "streams")
            .json(&body)
            .send()
    };
    let mut messages = vec![json!({"role": "user", "content": "look around"})];
    let resp =
        stream(json!({"model": "auto", "stream": true, "messages": messages, "tools": tools}))
            .await
            .unwrap();
    assert_eq!(resp.headers()["x-tollgate-provider"], "p0");
    assert!(read_sse(resp).await.iter().any(|d| d == "[DONE]"));
    messages.push(json!({"role": "assistant", "content": "looked"}));
    messages.push(json!({"role": "user", "content": "go on"}));
    // The stream ended well: the session is m0's, where the strategy alone
    // would pick m1.
    let resp = stream(json!({"model": "auto", "stream": true, "messages": messages}))
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-tollgate-provider"], "p0");
    assert_eq!(resp.headers()["x-tollgate-affinity"], "kept");
    read_sse(resp).await;
}
