//! Streams that outrun their reservation (a vendor ignoring `max_tokens`)
//! against a hard budget: 16 at once through every door, on both quota
//! engines. Each extends its reservation a step at a time while the budget
//! has room, and is cut with its door's terminal event when it has none;
//! spend never passes the limit by more than one step, and each cut stream
//! is billed for the text its client received.

use std::collections::HashMap;

use billing::testing::TestRedis;
use futures_util::future::join_all;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::*;
use crate::quotas::{post_as, team_key};

/// Output tokens reserved per extension in these tests.
const STEP: u64 = 64;
/// $1,000/Mtok output: one token costs 1,000,000 picodollars.
const OUTPUT_PICO: i64 = 1_000_000_000;
/// The budget: room for about 5,000 output tokens of the 16 × 2,000 the
/// vendor would send.
const LIMIT_PICO: i64 = 5_000 * OUTPUT_PICO;
const STREAMS: usize = 16;

#[derive(Clone, Copy, Debug)]
enum Door {
    Chat,
    /// Anthropic's door to an OpenAI-format upstream (translated).
    Messages,
    /// Anthropic's door to an Anthropic upstream (passed through).
    MessagesPass,
    Responses,
}

impl Door {
    fn path(self) -> &'static str {
        match self {
            Door::Chat => "/v1/chat/completions",
            Door::Messages | Door::MessagesPass => "/v1/messages",
            Door::Responses => "/v1/responses",
        }
    }

    fn body(self) -> Value {
        let prompt = "count the sheep in the meadow";
        match self {
            Door::Chat => json!({"model": "m", "max_tokens": 16, "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": prompt}]}),
            Door::Messages | Door::MessagesPass => json!({"model": "m", "max_tokens": 16,
                "stream": true, "messages": [{"role": "user", "content": prompt}]}),
            Door::Responses => json!({"model": "m", "max_output_tokens": 16, "stream": true,
                "input": prompt}),
        }
    }

    /// The text the client received, and whether the stream ended with
    /// the door's terminal event for a budget that ran out.
    fn read(self, text: &str) -> (String, bool) {
        let mut got = String::new();
        let mut cut = false;
        match self {
            Door::Chat => {
                for e in json_events(&sse_data(text)) {
                    if let Some(t) = e
                        .pointer("/choices/0/delta/content")
                        .and_then(Value::as_str)
                    {
                        got.push_str(t);
                    }
                    if e.pointer("/error/type") == Some(&json!("insufficient_quota")) {
                        assert_eq!(e["error"]["code"], "insufficient_quota", "{e}");
                        cut = true;
                    }
                }
            }
            Door::Messages | Door::MessagesPass => {
                for (name, e) in named_events(text) {
                    if let Some(t) = e.pointer("/delta/text").and_then(Value::as_str) {
                        got.push_str(t);
                    }
                    if name == "error" {
                        assert_eq!(e["error"]["type"], "rate_limit_error", "{e}");
                        cut = true;
                    }
                }
            }
            Door::Responses => {
                for (name, e) in named_events(text) {
                    if name == "response.output_text.delta" {
                        got.push_str(e["delta"].as_str().unwrap_or_default());
                    }
                    if name == "response.failed" {
                        assert_eq!(
                            e.pointer("/response/error/code"),
                            Some(&json!("insufficient_quota")),
                            "{e}"
                        );
                        cut = true;
                    }
                }
            }
        }
        (got, cut)
    }
}

/// The gateway: model `m` on a vendor that streams 2,000 tokens whatever
/// `max_tokens` says, counting in Redis when `redis` is given.
async fn runaway_app(
    door: Door,
    redis: Option<&TestRedis>,
) -> (loadtest::mock::MockHandle, TestApp) {
    let mock = spawn_mock(loadtest::mock::MockOptions {
        sim: router::sim::SimConfig {
            output_tokens: 2_000,
            ignore_max_tokens: true,
            ..fast_sim()
        },
        ..Default::default()
    })
    .await;
    let kind = match door {
        Door::MessagesPass => "anthropic",
        _ => "openai",
    };
    let redis = redis.map_or_else(String::new, |r| {
        format!(
            "[redis]\nurl = \"{}\"\nprefix = \"{}\"\ntimeout = \"2s\"\n",
            r.url, r.prefix
        )
    });
    let cfg = config(&format!(
        "[billing]\nkey_refresh_interval = \"100ms\"\n\
         [quotas]\nstream_step_tokens = {STEP}\n{redis}\
         [providers.up]\nkind = \"{kind}\"\nbase_url = \"{}\"\n\
         [models.m]\nprovider = \"up\"\ninput_per_mtok = 1.0\noutput_per_mtok = 1000.0\n",
        mock.base_url()
    ));
    (mock, spawn_app(cfg).await)
}

async fn sixteen_runaway_streams_stop_at_the_budget(door: Door, redis: Option<TestRedis>) {
    let (_mock, app) = runaway_app(door, redis.as_ref()).await;
    let budget = json!({"budget": {"limit_usd": LIMIT_PICO as f64 / 1e12, "period": "monthly",
        "enforcement": "hard"}});
    let (_, key) = team_key(&app, budget, json!({})).await;
    let body = door.body();
    let answers = join_all((0..STREAMS).map(|_| async {
        let resp = post_as(&app, &key, door.path(), &body).await;
        let status = resp.status().as_u16();
        let id = resp
            .headers()
            .get("x-tollgate-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = tokio::time::timeout(DEADLINE, resp.text())
            .await
            .expect("every stream ends")
            .unwrap();
        (status, id, text)
    }))
    .await;
    let mut delivered = HashMap::new();
    let mut cut = 0;
    for (status, id, text) in &answers {
        if *status == 429 {
            continue;
        }
        assert_eq!(*status, 200, "{door:?}: {text}");
        let (got, was_cut) = door.read(text);
        cut += usize::from(was_cut);
        delivered.insert(id.clone().expect("a request id"), (got, was_cut));
    }
    assert!(cut > 0, "{door:?}: some streams were cut at the budget");
    eprintln!("{door:?}: {} admitted, {cut} cut", delivered.len());

    // Every admitted stream has its row; the total is within one step of
    // the limit, and most of the budget was used (streams were not cut
    // early).
    let rows = ledger_rows(&app.db, delivered.len()).await;
    let spent: i64 = rows.values().map(|r| r.cost).sum();
    let step = STEP as i64 * OUTPUT_PICO;
    assert!(
        spent <= LIMIT_PICO + step,
        "{door:?}: spent {spent} over the limit {LIMIT_PICO} by more than a step ({step})"
    );
    assert!(
        spent >= LIMIT_PICO - STREAMS as i64 * 2 * step,
        "{door:?}: spent only {spent} of {LIMIT_PICO}"
    );
    eprintln!("{door:?}: spent {spent} of {LIMIT_PICO}");
    // A cut stream is billed for what its client received.
    for (id, (got, was_cut)) in &delivered {
        let row = &rows[id];
        if *was_cut {
            assert_eq!(row.outcome, "budget_exhausted", "{door:?}");
            assert_eq!(
                row.output_tokens,
                router::estimate::count_text(got) as i64,
                "{door:?}: billed for the text delivered"
            );
        }
    }
    // The budget's own counters agree: nothing is held any more, and what
    // it counts spent is the ledger's sum.
    let want = json!(billing::Picodollars(spent).usd());
    let none = json!(billing::Picodollars::ZERO.usd());
    eventually("the budget counts what the ledger has", async || {
        let me = app.get_json_as(&key, "/v1/me").await;
        let b = &me["team"]["budget"];
        b["spent_usd"] == want && b["reserved_usd"] == none
    })
    .await;
}

struct LedgerRow {
    cost: i64,
    output_tokens: i64,
    outcome: String,
}

/// The ledger's rows by request id, once there are `n`.
async fn ledger_rows(db: &billing::Db, n: usize) -> HashMap<String, LedgerRow> {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let rows =
            sqlx::query("SELECT request_id, cost_picousd, output_tokens, outcome FROM ledger")
                .fetch_all(db.pool())
                .await
                .unwrap();
        if rows.len() >= n {
            assert_eq!(rows.len(), n, "one row per admitted stream");
            return rows
                .iter()
                .map(|r| {
                    (
                        r.get::<String, _>("request_id"),
                        LedgerRow {
                            cost: r.get("cost_picousd"),
                            output_tokens: r.get("output_tokens"),
                            outcome: r.get("outcome"),
                        },
                    )
                })
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} of {n} rows",
            rows.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_chat_streams_stop_at_the_budget_in_process() {
    sixteen_runaway_streams_stop_at_the_budget(Door::Chat, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_messages_streams_stop_at_the_budget_in_process() {
    sixteen_runaway_streams_stop_at_the_budget(Door::Messages, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_passed_through_messages_streams_stop_at_the_budget_in_process() {
    sixteen_runaway_streams_stop_at_the_budget(Door::MessagesPass, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_responses_streams_stop_at_the_budget_in_process() {
    sixteen_runaway_streams_stop_at_the_budget(Door::Responses, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_streams_stop_at_the_budget_through_every_door_in_redis() {
    for door in [
        Door::Chat,
        Door::Messages,
        Door::MessagesPass,
        Door::Responses,
    ] {
        let Some(r) = TestRedis::new() else { return };
        sixteen_runaway_streams_stop_at_the_budget(door, Some(r)).await;
    }
}
