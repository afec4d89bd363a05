//! Agent sessions end to end: each ledger row carries the session its
//! request named (by the agents' own headers and body fields, or an explicit
//! `x-tollgate-session`, in a documented order, bounded and never a secret),
//! `group_by=session` reports what each session cost in JSON and CSV within
//! the caller's scope, and the mock upstream caches a session's repeated
//! prefix so its cache hits show in the ledger.

use loadtest::mock::MockOptions;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::*;
use crate::responses::{backends, Backend};

/// Everything, from before the tests to long after them.
const ALL_TIME: &str = "from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";

/// The doors, each with a model passed through in its own format.
#[derive(Debug, Clone, Copy)]
enum Door {
    Chat,
    Messages,
    Responses,
}

impl Door {
    fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Messages => "/v1/messages",
            Self::Responses => "/v1/responses",
        }
    }

    fn model(self) -> &'static str {
        match self {
            Self::Chat => Backend::Chat.model(),
            Self::Messages => Backend::Anthropic.model(),
            Self::Responses => Backend::Pass.model(),
        }
    }

    /// A request body for a conversation of `turns` user messages, with
    /// `extra` fields merged in.
    fn body(self, turns: &[&str], extra: Value) -> Value {
        let messages: Vec<Value> = turns
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                json!({"role": role, "content": *t})
            })
            .collect();
        let mut body = match self {
            Self::Chat => json!({"model": self.model(), "messages": messages}),
            Self::Messages => {
                json!({"model": self.model(), "max_tokens": 64, "system": "You are terse.", "messages": messages})
            }
            Self::Responses => {
                json!({"model": self.model(), "instructions": "You are terse.", "input": messages, "store": false})
            }
        };
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        body
    }
}

/// Request headers a test adds.
type Headers<'a> = Vec<(&'static str, &'a str)>;

/// Sends `body` through `door` with `key` and `headers`; the request id.
async fn send(
    app: &TestApp,
    key: &str,
    door: Door,
    headers: &[(&'static str, &str)],
    body: &Value,
) -> String {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, v.parse().unwrap());
    }
    if matches!(door, Door::Messages) {
        h.insert("anthropic-version", "2023-06-01".parse().unwrap());
    }
    let resp = app
        .http
        .post(app.url(door.path()))
        .bearer_auth(key)
        .headers(h)
        .json(body)
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{door:?}: {text}");
    id
}

/// One ledger row's session and cached input, once it is written.
async fn row_of(app: &TestApp, request_id: &str) -> (Option<String>, i64) {
    let mut found = None;
    eventually(&format!("the ledger row of {request_id}"), async || {
        let sql = format!(
            "SELECT session, cached_input_tokens FROM ledger WHERE request_id = {}",
            app.db.param(1)
        );
        found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(request_id)
            .fetch_optional(app.db.pool())
            .await
            .unwrap()
            .map(|r| {
                (
                    r.try_get::<Option<String>, _>("session").unwrap(),
                    r.try_get::<i64, _>("cached_input_tokens").unwrap(),
                )
            });
        found.is_some()
    })
    .await;
    found.unwrap()
}

async fn session_of(app: &TestApp, request_id: &str) -> Option<String> {
    row_of(app, request_id).await.0
}

async fn app_on_mock(options: MockOptions) -> (loadtest::mock::MockHandle, TestApp) {
    let mock = spawn_mock(options).await;
    let app = spawn_app(backends(&mock, "")).await;
    (mock, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agents_own_session_signal_is_recorded() {
    let (_mock, app) = app_on_mock(MockOptions {
        sim: fast_sim(),
        ..Default::default()
    })
    .await;
    let hi = ["hello"];
    let cases: Vec<(&str, Door, Headers, Value, Option<&str>)> = vec![
        (
            "Claude Code's header",
            Door::Messages,
            vec![("x-claude-code-session-id", "cc-4c1f7a9e")],
            json!({}),
            Some("cc-4c1f7a9e"),
        ),
        (
            "Claude Code's metadata.user_id, as it sends it now",
            Door::Messages,
            vec![],
            json!({"metadata": {"user_id": "{\"device_id\":\"d0\",\"account_uuid\":\"\",\"session_id\":\"9a8b7c6d\"}"}}),
            Some("9a8b7c6d"),
        ),
        (
            "Claude Code's older metadata.user_id",
            Door::Messages,
            vec![],
            json!({"metadata": {"user_id": "user_5f3e_account_1b2c_session_77aa-88bb"}}),
            Some("77aa-88bb"),
        ),
        (
            "Codex's session-id header",
            Door::Responses,
            vec![("session-id", "codex-s1"), ("thread-id", "codex-t1")],
            json!({"prompt_cache_key": "codex-t1"}),
            Some("codex-s1"),
        ),
        (
            "Codex's older headers",
            Door::Responses,
            vec![("conversation_id", "codex-c2"), ("session_id", "codex-s2")],
            json!({}),
            Some("codex-s2"),
        ),
        (
            "Codex's prompt_cache_key",
            Door::Responses,
            vec![],
            json!({"prompt_cache_key": "codex-t3"}),
            Some("codex-t3"),
        ),
        (
            "OpenAI's prompt_cache_key",
            Door::Chat,
            vec![],
            json!({"prompt_cache_key": "conv-42", "user": "alice"}),
            Some("conv-42"),
        ),
        (
            "OpenAI's user, a user rather than a session",
            Door::Chat,
            vec![],
            json!({"user": "alice"}),
            Some("user:alice"),
        ),
        (
            "OpenAI's safety_identifier",
            Door::Responses,
            vec![],
            json!({"safety_identifier": "h-1234"}),
            Some("user:h-1234"),
        ),
        (
            "the explicit header",
            Door::Chat,
            vec![("x-tollgate-session", "refactor-auth")],
            json!({}),
            Some("refactor-auth"),
        ),
        (
            "the explicit header first of all",
            Door::Messages,
            vec![
                ("x-tollgate-session", "explicit-wins"),
                ("x-claude-code-session-id", "cc-loses"),
            ],
            json!({"metadata": {"user_id": "user_a_account_b_session_meta-loses"}}),
            Some("explicit-wins"),
        ),
        (
            "an agent header before the body",
            Door::Chat,
            vec![("session_id", "hdr-wins")],
            json!({"prompt_cache_key": "pck-loses", "user": "u"}),
            Some("hdr-wins"),
        ),
        (
            "a secret-looking value, skipped for the next signal",
            Door::Chat,
            vec![("x-tollgate-session", "sk-proj-abcdef0123456789")],
            json!({"prompt_cache_key": "after-the-secret"}),
            Some("after-the-secret"),
        ),
        (
            "the caller's own key, never a session",
            Door::Chat,
            vec![("x-tollgate-session", MASTER_KEY)],
            json!({"user": MASTER_KEY}),
            None,
        ),
        ("no signal at all", Door::Chat, vec![], json!({}), None),
    ];
    for (what, door, headers, extra, want) in cases {
        let id = send(&app, MASTER_KEY, door, &headers, &door.body(&hi, extra)).await;
        assert_eq!(session_of(&app, &id).await.as_deref(), want, "{what}");
    }

    // Bounded: a long value keeps its start and gains a hash of the whole.
    let long = format!("task-{}", "x".repeat(400));
    let id = send(
        &app,
        MASTER_KEY,
        Door::Chat,
        &[("x-tollgate-session", &long)],
        &Door::Chat.body(&hi, json!({})),
    )
    .await;
    let stored = session_of(&app, &id).await.unwrap();
    assert!(stored.len() <= 128, "{stored}");
    assert!(
        stored.starts_with("task-xxxx") && stored.contains('~'),
        "{stored}"
    );
    let other = format!("task-{}", "x".repeat(401));
    let id = send(
        &app,
        MASTER_KEY,
        Door::Chat,
        &[("x-tollgate-session", &other)],
        &Door::Chat.body(&hi, json!({})),
    )
    .await;
    assert_ne!(
        session_of(&app, &id).await.unwrap(),
        stored,
        "one id per value"
    );
    app.shutdown().await.unwrap();
}

/// The session report's rows by session.
fn by_session(report: &Value) -> std::collections::HashMap<String, Value> {
    report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_report_says_what_each_task_cost_in_json_and_csv() {
    let (_mock, app) = app_on_mock(MockOptions {
        sim: router::sim::SimConfig {
            cached_tokens: 4,
            ..fast_sim()
        },
        ..Default::default()
    })
    .await;
    let org = create_org(&app, "org", json!({})).await;
    let team = create_team(&app, &org, "team", json!({})).await;
    let (k1, key1) = create_key(&app, &team, "k1", json!({})).await;
    let (k2, _) = create_key(&app, &team, "k2", json!({})).await;
    let hdr = |s: &'static str| vec![("x-tollgate-session", s)];
    for (key, session) in [
        (&k1, "task-a"),
        (&k1, "task-a"),
        (&k1, "task-b"),
        (&k2, "task-c"),
    ] {
        let body = Door::Chat.body(&["hello"], json!({}));
        send(&app, key, Door::Chat, &hdr(session), &body).await;
    }
    // A request with no session is in every report but this one.
    send(
        &app,
        &k1,
        Door::Chat,
        &[],
        &Door::Chat.body(&["hello"], json!({})),
    )
    .await;
    eventually("every request is in the ledger", async || {
        let (_, v) = app
            .get_as(MASTER_KEY, &format!("/admin/spend?{ALL_TIME}"))
            .await;
        v["total"]["requests"] == 5
    })
    .await;

    let (status, report) = app
        .get_as(
            MASTER_KEY,
            &format!("/admin/spend?group_by=session&{ALL_TIME}"),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["group_by"], "session");
    let rows = by_session(&report);
    assert_eq!(rows.len(), 3, "{report}");
    let a = &rows["task-a"];
    assert_eq!(a["requests"], 2);
    assert!(a["first_seen"].as_str().unwrap() <= a["last_seen"].as_str().unwrap());
    // Summed exactly from the session's rows.
    let sums = sqlx::query(
        "SELECT CAST(SUM(input_tokens) AS BIGINT) AS i, CAST(SUM(cached_input_tokens) AS BIGINT) AS c, \
         CAST(SUM(cost_picousd) AS BIGINT) AS cost FROM ledger WHERE session = 'task-a'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let (input, cached, cost): (i64, i64, i64) = (
        sums.try_get("i").unwrap(),
        sums.try_get("c").unwrap(),
        sums.try_get("cost").unwrap(),
    );
    assert_eq!(a["input_tokens"], input);
    assert_eq!(a["cached_input_tokens"], cached);
    assert_eq!(cached, 8, "the mock's fixed 4 cached tokens, twice");
    assert_eq!(a["cost_picousd"], cost);
    let share = a["cache_hit_share"].as_f64().unwrap();
    assert!(
        (share - cached as f64 / (input + cached) as f64).abs() < 1e-4,
        "{a}"
    );
    for field in [
        "reference_cost_usd",
        "savings_usd",
        "output_tokens",
        "cache_write_tokens",
    ] {
        assert!(a.get(field).is_some(), "{field} in {a}");
    }
    assert_eq!(
        report["total"]["requests"], 4,
        "the sessions' requests only"
    );
    assert_eq!(report["total"]["group"], Value::Null);

    // Most recently seen first, filtered by key, limited.
    let (_, mine) = app
        .get_as(
            MASTER_KEY,
            &format!(
                "/admin/spend?group_by=session&key_id={}&{ALL_TIME}",
                key1["id"].as_str().unwrap()
            ),
        )
        .await;
    let mut names: Vec<&str> = mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["group"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["task-a", "task-b"]);
    let (_, one) = app
        .get_as(
            MASTER_KEY,
            &format!("/admin/spend?group_by=session&limit=1&{ALL_TIME}"),
        )
        .await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"][0], report["data"][0], "the last one seen");
    let seen: Vec<&str> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["last_seen"].as_str().unwrap())
        .collect();
    assert!(
        seen.windows(2).all(|w| w[0] >= w[1]),
        "most recent first: {seen:?}"
    );
    let (_, by_team) = app
        .get_as(
            MASTER_KEY,
            &format!("/admin/spend?group_by=session&team_id={team}&{ALL_TIME}"),
        )
        .await;
    assert_eq!(by_session(&by_team).len(), 3);

    // CSV: a header and one line a session, the same figures.
    let csv = app
        .get(&format!(
            "/admin/spend?group_by=session&format=csv&{ALL_TIME}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("session,first_seen,last_seen,requests,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,reasoning_tokens,cache_hit_share,cost_usd,reference_cost_usd,savings_usd")
    );
    let line_a = lines
        .clone()
        .find(|l| l.starts_with("task-a,"))
        .expect("a line for task-a");
    let cells: Vec<&str> = line_a.split(',').collect();
    assert_eq!(cells[1], a["first_seen"]);
    assert_eq!(cells[3], "2");
    assert_eq!(cells[10], a["cost_usd"]);
    assert_eq!(lines.count(), 3);

    // `limit` belongs to sessions, and is bounded.
    for bad in [
        "group_by=model&limit=5",
        "group_by=session&limit=0",
        "group_by=session&limit=10001",
        "group_by=sessions",
    ] {
        let (status, v) = app.get_as(MASTER_KEY, &format!("/admin/spend?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_key_sees_its_own_teams_sessions_only() {
    let (_mock, app) = app_on_mock(MockOptions {
        sim: fast_sim(),
        ..Default::default()
    })
    .await;
    let org_a = create_org(&app, "org-a", json!({})).await;
    let org_b = create_org(&app, "org-b", json!({})).await;
    let team_a = create_team(&app, &org_a, "team-a", json!({})).await;
    let team_b = create_team(&app, &org_b, "team-b", json!({})).await;
    let (ka, _) = create_key(&app, &team_a, "a", json!({})).await;
    let (kb, _) = create_key(&app, &team_b, "b", json!({})).await;
    let body = Door::Chat.body(&["hello"], json!({}));
    // Both teams name a session "shared"; team B has one of its own too.
    for (key, session) in [
        (&ka, "shared"),
        (&kb, "shared"),
        (&kb, "shared"),
        (&kb, "b-secret-plan"),
    ] {
        send(
            &app,
            key,
            Door::Chat,
            &[("x-tollgate-session", session)],
            &body,
        )
        .await;
    }
    eventually("every request is in the ledger", async || {
        let (_, v) = app
            .get_as(MASTER_KEY, &format!("/admin/spend?{ALL_TIME}"))
            .await;
        v["total"]["requests"] == 4
    })
    .await;

    let (status, mine) = app
        .get_as(&ka, &format!("/v1/spend?group_by=session&{ALL_TIME}"))
        .await;
    assert_eq!(status, 200, "{mine}");
    let rows = by_session(&mine);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["shared"], "{mine}");
    assert_eq!(rows["shared"]["requests"], 1, "team A's request only");
    let csv = app
        .http
        .get(app.url(&format!("/v1/spend?group_by=session&format=csv&{ALL_TIME}")))
        .bearer_auth(&ka)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !csv.contains("b-secret-plan") && csv.lines().count() == 2,
        "{csv}"
    );

    let (status, v) = app
        .get_as(
            &ka,
            &format!("/v1/spend?group_by=session&team_id={team_b}&{ALL_TIME}"),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "spend_out_of_scope");
    let (status, v) = app
        .get_as(
            &ka,
            &format!("/v1/spend?group_by=session&org_id={org_b}&{ALL_TIME}"),
        )
        .await;
    assert_eq!(status, 403, "{v}");

    let (_, all) = app
        .get_as(
            MASTER_KEY,
            &format!("/v1/spend?group_by=session&{ALL_TIME}"),
        )
        .await;
    let all = by_session(&all);
    assert_eq!(all["shared"]["requests"], 3);
    assert!(all.contains_key("b-secret-plan"));
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_caches_a_sessions_repeated_prefix_end_to_end() {
    for shape in [
        router::sim::UsageShape::OpenAi,
        router::sim::UsageShape::Kimi,
        router::sim::UsageShape::DeepSeek,
    ] {
        let (_mock, app) = app_on_mock(MockOptions {
            sim: router::sim::SimConfig {
                prefix_cache: true,
                usage_shape: shape,
                ..fast_sim()
            },
            ..Default::default()
        })
        .await;
        for door in [Door::Chat, Door::Messages, Door::Responses] {
            let turns = [
                "Read the repository and list the modules.",
                "Here they are.",
                "Now the tests.",
            ];
            let session = format!("prefix-{door:?}-{shape:?}");
            let headers: Vec<(&'static str, &str)> = vec![("x-tollgate-session", &session)];
            // The upstream sees the session by the body's key where it passes
            // through; the explicit header stays in Tollgate.
            let extra = match door {
                Door::Messages => {
                    json!({"metadata": {"user_id": format!("user_x_account_y_session_{session}")}})
                }
                _ => json!({"prompt_cache_key": session}),
            };
            let first = send(
                &app,
                MASTER_KEY,
                door,
                &headers,
                &door.body(&turns[..1], extra.clone()),
            )
            .await;
            let second = send(
                &app,
                MASTER_KEY,
                door,
                &headers,
                &door.body(&turns, extra.clone()),
            )
            .await;
            let (s1, cached1) = row_of(&app, &first).await;
            let (s2, cached2) = row_of(&app, &second).await;
            assert_eq!(
                (s1.as_deref(), s2.as_deref()),
                (Some(&*session), Some(&*session))
            );
            assert_eq!(
                cached1, 0,
                "{door:?} {shape:?}: nothing to repeat on the first turn"
            );
            assert!(
                cached2 > 0,
                "{door:?} {shape:?}: the second turn repeats the first"
            );

            // The report shows the session's cache hits.
            let (_, report) = app
                .get_as(
                    MASTER_KEY,
                    &format!("/admin/spend?group_by=session&{ALL_TIME}"),
                )
                .await;
            let row = &by_session(&report)[&session];
            assert_eq!(row["cached_input_tokens"], cached2, "{row}");
            assert!(row["cache_hit_share"].as_f64().unwrap() > 0.0, "{row}");
        }
        app.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_mock_caches_prefixes_when_asked_and_not_otherwise() {
    for (on, want_cached) in [(true, true), (false, false)] {
        let mut app = spawn_app(config(&format!(
            "[providers.sim]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = 0.0\nprefix_cache = {on}\n\
             [models.m]\nprovider = \"sim\"\n"
        )))
        .await;
        let turns = ["Plan the migration.", "Step one, then two.", "Go on."];
        let body = |n: usize| Door::Chat.body(&turns[..n], json!({"model": "m"}));
        app.chat(body(1)).await;
        assert_eq!(app.next_record().await.usage.cached_input, 0);
        app.chat(body(3)).await;
        let cached = app.next_record().await.usage.cached_input;
        assert_eq!(cached > 0, want_cached, "prefix_cache = {on}: {cached}");
        app.shutdown().await.unwrap();
    }
}
