//! Routes for Responses clients: fallbacks across backend kinds with one
//! ledger row per attempt, candidates skipped when their format cannot
//! carry the request, and the model list.

use loadtest::mock::{Faults, MockHandle, MockOptions};
use router::Usage;
use serde_json::{json, Value};

use super::*;

/// Route `codex`: a pass-through that answers 500, then an Anthropic
/// provider; route `agent`: an Anthropic provider that answers 429, then a
/// chat provider.
async fn fallback_app() -> (Vec<MockHandle>, TestApp) {
    let bad = spawn_mock(failing(500)).await;
    let limited = spawn_mock(failing(429)).await;
    let good = mock_with(fast_sim(), Faults::default()).await;
    let cfg = config(&format!(
        "[providers.resp_bad]\nkind = \"openai\"\nbase_url = \"{bad}\"\nresponses = true\n\
         [providers.ant_limited]\nkind = \"anthropic\"\nbase_url = \"http://{limited}\"\n\
         [providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{good}\"\n\
         [providers.oai]\nkind = \"openai\"\nbase_url = \"{good_base}\"\n\
         [models.gpt-resp]\nprovider = \"resp_bad\"\n{PRICES}\
         [models.claude-limited]\nprovider = \"ant_limited\"\n{PRICES}\
         [models.claude]\nprovider = \"ant\"\n{PRICES}\
         [models.gpt-chat]\nprovider = \"oai\"\n{PRICES}\
         [routes.codex]\ncandidates = [\"gpt-resp\", \"claude\"]\n\
         [routes.agent]\ncandidates = [\"claude-limited\", \"gpt-chat\"]\n",
        bad = bad.base_url(),
        limited = limited.addr(),
        good = good.addr(),
        good_base = good.base_url(),
    ));
    (vec![bad, limited, good], spawn_app(cfg).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_falls_back_across_backend_kinds_for_a_responses_client() {
    for (route, first, second, first_status) in [
        ("codex", ("gpt-resp", "resp_bad"), ("claude", "ant"), 500),
        (
            "agent",
            ("claude-limited", "ant_limited"),
            ("gpt-chat", "oai"),
            429,
        ),
    ] {
        for stream in [false, true] {
            // A fresh gateway: a 429 rests its model for the retry-after.
            let (_mocks, mut app) = fallback_app().await;
            let what = format!("{route} stream={stream}");
            let resp = app.responses(&request(route, stream)).await;
            assert_eq!(resp.status(), 200, "{what}");
            assert_eq!(resp.headers()["x-tollgate-attempts"], "2", "{what}");
            assert_eq!(resp.headers()["x-tollgate-provider"], second.1, "{what}");
            let id = resp.headers()["x-tollgate-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let answer = if stream {
                streams::terminal(&resp.text().await.unwrap())["response"].clone()
            } else {
                resp.json().await.unwrap()
            };
            assert_eq!(answer["status"], "completed", "{what}: {answer}");
            assert_eq!(answer["model"], route, "{what}");
            assert!(!output_text(&answer).is_empty(), "{what}");
            let (a, b) = (app.next_record().await, app.next_record().await);
            assert_eq!(
                (a.ctx.requested_model.as_str(), a.ctx.attempt),
                (first.0, 1)
            );
            assert_eq!(
                (b.ctx.requested_model.as_str(), b.ctx.attempt),
                (second.0, 2)
            );
            assert_eq!(a.status, first_status, "{what}");
            assert_eq!(
                a.usage,
                Usage::default(),
                "{what}: a failed attempt costs nothing"
            );
            assert!(b.usage.output > 0, "{what}");
            for r in [&a, &b] {
                assert_eq!(r.ctx.client_request_id.to_string(), id, "{what}");
                assert_eq!(r.ctx.format.label(), "responses");
                assert_eq!(r.ctx.stream, stream);
            }
            let rows = rows(&app.db, 2).await;
            for row in &rows {
                assert_eq!(row.client_request_id, id, "{what}");
                assert_eq!(
                    (
                        row.client_format.as_str(),
                        row.endpoint.as_str(),
                        row.stream
                    ),
                    ("responses", "responses", stream)
                );
            }
            assert_eq!(
                rows[0].request_id, id,
                "the first attempt's id is the client's"
            );
            assert_eq!(
                (rows[0].provider.as_str(), rows[0].status, rows[0].cost),
                (first.1, first_status as i64, 0)
            );
            assert_eq!((rows[1].provider.as_str(), rows[1].status), (second.1, 200));
            assert!(rows[1].cost > 0, "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_to_a_responses_client_in_openais_shape() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let list: Value = app
        .get("/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude", "gpt-chat", "gpt-resp"]);
    for m in list["data"].as_array().unwrap() {
        assert_eq!(m["object"], "model");
        assert!(m["created"].is_u64() && m["owned_by"].is_string(), "{m}");
    }
    // Every listed model answers the Responses door.
    for id in ids {
        assert_eq!(
            app.responses(&request(id, false)).await.status(),
            200,
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_cannot_carry_the_request_is_skipped_for_one_that_can() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let mut cfg_text = format!(
        "[providers.oai]\nkind = \"openai\"\nbase_url = \"{base}\"\n\
         [providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{addr}\"\n\
         [providers.resp]\nkind = \"openai\"\nbase_url = \"{base}\"\nresponses = true\n",
        base = mock.base_url(),
        addr = mock.addr()
    );
    // Each model says it can answer in a JSON schema (Claude can, in its
    // own API), so the route plans all three.
    for b in Backend::ALL {
        cfg_text.push_str(&format!(
            "[models.{}]\nprovider = \"{}\"\ncapabilities = [\"tools\", \"json_schema\"]\n{PRICES}",
            b.model(),
            b.provider()
        ));
    }
    cfg_text.push_str("[routes.codex]\ncandidates = [\"claude\", \"gpt-chat\", \"gpt-resp\"]\n");
    let mut app = spawn_app(config(&cfg_text)).await;
    // A JSON schema: Anthropic cannot enforce it, chat can.
    let mut schema = request("codex", false);
    schema["text"] =
        json!({"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}});
    // A previous response: only the pass-through can resolve it.
    let mut chained = request("codex", false);
    chained["previous_response_id"] = json!("resp_earlier");
    for (body, provider) in [(schema, "oai"), (chained, "resp")] {
        let resp = app.responses(&body).await;
        assert_eq!(resp.status(), 200, "{provider}");
        assert_eq!(resp.headers()["x-tollgate-provider"], provider);
        assert_eq!(
            resp.headers()["x-tollgate-attempts"],
            "1",
            "a skip is no attempt"
        );
        let record = app.next_record().await;
        assert_eq!(record.ctx.provider, provider);
        assert!(
            app.try_record().is_none(),
            "no record for the skipped candidates"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_recovering_model_cannot_carry_do_not_take_its_probe() {
    // `claude` fails once and its breaker opens; then it recovers. Requests
    // it cannot carry (a JSON schema) keep flowing past it to `gpt-chat`:
    // they must not claim the half-open breaker's one probe, or the model
    // is never tried again while such traffic lasts.
    let bad = spawn_mock(failing(500)).await;
    let good = mock_with(fast_sim(), Faults::default()).await;
    let cfg = config(&format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\n\
         [providers.oai]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.claude]\nprovider = \"ant\"\ncapabilities = [\"json_schema\"]\n\
         [models.gpt-chat]\nprovider = \"oai\"\ncapabilities = [\"json_schema\"]\n\
         [routes.codex]\ncandidates = [\"claude\", \"gpt-chat\"]\n\
         [router]\nbreaker_failures = 1\nbreaker_cooldown = \"200ms\"\n",
        bad.addr(),
        good.base_url()
    ));
    let app = spawn_app(cfg).await;
    let resp = app.responses(&request("codex", false)).await;
    assert_eq!(resp.headers()["x-tollgate-attempts"], "2", "claude failed");
    bad.set_options(MockOptions {
        sim: fast_sim(),
        ..Default::default()
    });
    let mut schema = request("codex", false);
    schema["text"] =
        json!({"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}});
    eventually("claude is probed again", async || {
        let skipped = app.responses(&schema).await;
        assert_eq!(skipped.headers()["x-tollgate-provider"], "oai");
        let plain = app.responses(&request("codex", false)).await;
        plain.headers()["x-tollgate-provider"] == "ant"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_by_a_budget_do_not_take_a_recovering_models_probe() {
    // As above, with a caller whose budget is spent: its refused requests
    // (agents retry them) must not hold the probe of a recovering model.
    let bad = spawn_mock(failing(500)).await;
    let good = mock_with(fast_sim(), Faults::default()).await;
    let cfg = config(&format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\n\
         [providers.oai]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.claude]\nprovider = \"ant\"\n[models.gpt-chat]\nprovider = \"oai\"\n\
         [routes.codex]\ncandidates = [\"claude\", \"gpt-chat\"]\n\
         [router]\nbreaker_failures = 1\nbreaker_cooldown = \"200ms\"\n",
        bad.addr(),
        good.base_url()
    ));
    let app = spawn_app(cfg).await;
    let budget = json!({"limit_tokens": 1, "period": "daily", "enforcement": "hard"});
    let (_, spent) = crate::quotas::team_key(&app, json!({"budget": budget}), json!({})).await;
    let resp = app.responses(&request("codex", false)).await;
    assert_eq!(resp.headers()["x-tollgate-attempts"], "2", "claude failed");
    bad.set_options(MockOptions {
        sim: fast_sim(),
        ..Default::default()
    });
    eventually("claude is probed again", async || {
        let refused = app
            .http
            .post(app.url("/v1/responses"))
            .bearer_auth(&spent)
            .json(&request("codex", false))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 429);
        let plain = app.responses(&request("codex", false)).await;
        plain.headers()["x-tollgate-provider"] == "ant"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_is_not_turned_into_a_refusal_when_the_rest_cannot_carry_the_request() {
    // The pass-through fails with a 500 (worth retrying); the candidate
    // left cannot carry `previous_response_id`. The client must hear of
    // the 500, not a 400 that tells it never to retry.
    let bad = spawn_mock(failing(500)).await;
    let good = mock_with(fast_sim(), Faults::default()).await;
    let cfg = config(&format!(
        "[providers.resp_bad]\nkind = \"openai\"\nbase_url = \"{}\"\nresponses = true\n\
         [providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\n\
         [models.gpt-resp]\nprovider = \"resp_bad\"\n[models.claude]\nprovider = \"ant\"\n\
         [routes.codex]\ncandidates = [\"gpt-resp\", \"claude\"]\n",
        bad.base_url(),
        good.addr()
    ));
    let mut app = spawn_app(cfg).await;
    let mut chained = request("codex", false);
    chained["previous_response_id"] = json!("resp_earlier");
    let resp = app.responses(&chained).await;
    assert_eq!(resp.status(), 500, "{}", resp.text().await.unwrap());
    assert_eq!(app.next_record().await.status, 500);
    assert_eq!(good.request_count(), 0);
}
