//! Whole Responses answers on every backend kind: what each upstream
//! receives for them, and how they are metered.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_request_is_answered_and_metered_on_every_backend_kind() {
    answered_and_metered(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_request_is_metered_into_a_postgres_ledger() {
    let Some(pg) = billing::testing::postgres().await else {
        return;
    };
    answered_and_metered(Some(pg.url.clone())).await;
    drop(pg);
}

/// One whole request per backend: the answer, the record and the ledger
/// row (in the database at `database_url`, else a fresh SQLite file).
async fn answered_and_metered(database_url: Option<String>) {
    let sim = thinking_sim();
    let mock = mock_with(sim.clone(), Faults::default()).await;
    let mut cfg = backends(&mock, "");
    if let Some(url) = database_url {
        cfg.database.url = gateway::config::Secret::new(url);
    }
    let mut app = spawn_app(cfg).await;
    let mut expected = Vec::new();
    for b in Backend::ALL {
        let what = format!("{b:?}");
        let resp = app.responses(&request(b.model(), false)).await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(
            resp.headers()["x-tollgate-provider"],
            b.provider(),
            "{what}"
        );
        assert_eq!(resp.headers()["x-tollgate-model"], b.upstream_model());
        assert!(resp.headers().contains_key("x-tollgate-cost-usd"), "{what}");
        let id = resp.headers()["x-tollgate-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let answer: Value = resp.json().await.unwrap();
        let received = last_at(&mock, b.path());
        assert_eq!(received.body["model"], b.upstream_model(), "{what}");
        let (usage, plan) = b.mock_usage(&mock, &sim);

        assert_readable(&answer);
        assert_eq!(answer["object"], "response", "{what}: {answer}");
        assert_eq!(answer["status"], "completed", "{what}: {answer}");
        assert_eq!(
            answer["model"],
            b.model(),
            "{what}: the name the client asked for"
        );
        assert!(
            answer["id"].as_str().unwrap().starts_with("resp_"),
            "{what}"
        );
        assert_eq!(
            output_text(&answer),
            words(&plan),
            "{what}: the mock's words"
        );
        let reasoning = items_of(&answer, "reasoning");
        assert_eq!(reasoning.len(), 1, "{what}: {answer}");
        assert!(
            reasoning[0]["encrypted_content"].is_string(),
            "{what}: reasoning comes back for the next turn: {answer}"
        );
        assert_usage_json(&answer["usage"], &usage, &what);

        let record = app.next_record().await;
        assert_eq!(record.ctx.format.label(), "responses", "{what}");
        assert_eq!(record.ctx.endpoint(), "responses", "{what}");
        assert_eq!(record.ctx.provider, b.provider(), "{what}");
        assert_eq!(record.ctx.id.to_string(), id, "{what}");
        assert!(!record.ctx.stream);
        assert!(record.complete(), "{what}: {:?}", record.end);
        assert_eq!(record.usage_source, UsageSource::Provider, "{what}");
        assert_eq!(record.usage, usage, "{what}: the mock's own figures");
        assert_eq!(record.cost.0, priced(&usage), "{what}");
        expected.push((id, b, usage));
    }
    let rows = rows(&app.db, 3).await;
    for (row, (id, b, usage)) in rows.iter().zip(&expected) {
        assert_eq!(&row.request_id, id);
        assert_eq!(
            (row.client_format.as_str(), row.endpoint.as_str()),
            ("responses", "responses"),
            "{b:?}"
        );
        assert_eq!(row.provider, b.provider());
        assert_eq!(row.requested_model, b.model());
        assert_eq!((row.status, row.stream, row.estimated), (200, false, false));
        assert_eq!(&row.usage, usage, "{b:?}");
        assert_eq!(row.cost, priced(usage), "{b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_backends_receive_chat_and_messages_bodies() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    for b in [Backend::Chat, Backend::Anthropic] {
        let mut body = request(b.model(), false);
        body["max_output_tokens"] = json!(20000);
        body["reasoning"] = json!({"effort": "high", "summary": "auto"});
        body["prompt_cache_key"] = json!("session-1");
        body["include"] = json!(["reasoning.encrypted_content"]);
        assert_eq!(app.responses(&body).await.status(), 200, "{b:?}");
    }
    let chat = last_at(&mock, "/v1/chat/completions").body;
    assert_eq!(chat["model"], "up-chat");
    assert_eq!(
        chat["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello gateway"}])
    );
    assert_eq!(chat["max_tokens"], 20000);
    assert_eq!(chat["reasoning_effort"], "high");
    for gone in [
        "input",
        "instructions",
        "store",
        "include",
        "prompt_cache_key",
    ] {
        assert!(chat.get(gone).is_none(), "{gone} is not chat's: {chat}");
    }
    let messages = last_at(&mock, "/v1/messages").body;
    assert_eq!(messages["model"], "up-claude");
    assert_eq!(messages["system"], "Be brief.");
    assert_eq!(
        messages["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hello gateway"}]}])
    );
    assert_eq!(messages["max_tokens"], 20000);
    assert_eq!(
        messages["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384}),
        "high effort is a 16k budget"
    );
    let received = last_at(&mock, "/v1/messages");
    assert_eq!(received.headers["x-api-key"], ANTHROPIC_KEY);
    assert!(
        received.authorization.is_none(),
        "the client's key stays here"
    );
}

/// A Codex-like request with what Tollgate does not know, in an order to keep.
fn codex_request(model: &str) -> Value {
    json!({
        "model": model,
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox: workspace-write"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the test"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "look first"}],
             "encrypted_content": "gAAAAABo-openai-own-ciphertext"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell",
             "arguments": "{\"command\":[\"ls\"]}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "src\ntests\n"},
            {"type": "brand_new_item_2027", "payload": {"kept": [1, 2, 3]}},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done!"},
        ],
        "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}},
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
            {"type": "web_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": false,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-session",
        "text": {"verbosity": "low"},
        "client_metadata": {"x-codex-installation-id": "abc"},
        "future_field": {"nested": [true, null, 1.5]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_through_sends_the_clients_body_untouched_but_for_the_model() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let mut app = spawn_app(backends(&mock, "")).await;
    let body = codex_request("gpt-resp");
    let resp = app
        .post("/v1/responses")
        .header("session_id", "0199-session")
        .header("openai-beta", "responses=experimental")
        .header("originator", "codex_cli_rs")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["model"], "gpt-resp");
    let received = last_at(&mock, "/v1/responses");
    let mut expected = body.clone();
    expected["model"] = json!("up-resp");
    assert_eq!(received.body, expected, "only the model changes");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&received.body), keys(&body), "in the client's order");
    assert_eq!(received.path, "/v1/responses");
    assert_eq!(
        received.authorization.as_deref(),
        Some(format!("Bearer {OPENAI_KEY}").as_str()),
        "the provider's key, not the client's"
    );
    assert_eq!(received.headers["session_id"], "0199-session");
    assert_eq!(received.headers["openai-beta"], "responses=experimental");
    assert_eq!(mock.received().len(), 1, "nothing else was asked");
    let record = app.next_record().await;
    assert_eq!(record.ctx.provider, "resp");
    assert_eq!(record.ctx.operation, router::Operation::Responses);

    // A previous response id is the upstream's to resolve: forwarded.
    let mut chained = request("gpt-resp", false);
    chained["previous_response_id"] = json!("resp_earlier");
    let resp = app.responses(&chained).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        last_at(&mock, "/v1/responses").body["previous_response_id"],
        "resp_earlier"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_history_is_translated_for_chat_and_anthropic_backends() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    for b in [Backend::Chat, Backend::Anthropic] {
        let resp = app
            .post("/v1/responses")
            .header("session_id", "0199-session")
            .json(&codex_request(b.model()))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{b:?}: {text}");
        assert!(
            !last_at(&mock, b.path()).headers.contains_key("session_id"),
            "{b:?}: Codex's headers are for an upstream of its own format"
        );
    }
    let chat = last_at(&mock, "/v1/chat/completions").body;
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool"
        ],
        "{chat}"
    );
    let names: Vec<&str> = chat["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shell", "apply_patch"], "hosted tools are left out");
    assert_eq!(chat["parallel_tool_calls"], false);
    let messages = last_at(&mock, "/v1/messages").body;
    assert_eq!(
        messages["system"],
        "You are Codex.\n\nsandbox: workspace-write"
    );
    let kinds: Vec<Vec<&str>> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["type"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            vec!["text"],
            vec!["tool_use"],
            vec!["tool_result"],
            vec!["tool_use"],
            vec!["tool_result"]
        ],
        "OpenAI's own reasoning cannot reach Anthropic; the rest does: {messages}"
    );
    assert_eq!(
        messages["messages"][3]["content"][0]["input"],
        json!({"input": "*** Begin Patch"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_by_max_output_tokens_is_incomplete_and_billed() {
    let sim = SimConfig {
        output_tokens: 8,
        ..fast_sim()
    };
    let mock = mock_with(sim.clone(), Faults::default()).await;
    let mut app = spawn_app(backends(&mock, "")).await;
    for b in Backend::ALL {
        for stream in [false, true] {
            let what = format!("{b:?} stream={stream}");
            let mut body = request(b.model(), stream);
            body["max_output_tokens"] = json!(3);
            let resp = app.responses(&body).await;
            assert_eq!(resp.status(), 200, "{what}");
            let answer = if stream {
                let text = resp.text().await.unwrap();
                let events = streams::assert_sequence(&text);
                let (name, last) = events.last().unwrap();
                assert_eq!(name, "response.incomplete", "{what}");
                last["response"].clone()
            } else {
                resp.json().await.unwrap()
            };
            assert_readable(&answer);
            assert_eq!(answer["status"], "incomplete", "{what}: {answer}");
            assert_eq!(
                answer["incomplete_details"]["reason"], "max_output_tokens",
                "{what}: {answer}"
            );
            let (usage, _) = b.mock_usage(&mock, &sim);
            assert_eq!(usage.output, 3, "{what}");
            assert_usage_json(&answer["usage"], &usage, &what);
            let record = app.next_record().await;
            assert_eq!(record.usage, usage, "{what}");
            assert_eq!(record.usage_source, UsageSource::Provider, "{what}");
            assert!(record.cost.0 > 0, "{what}: an incomplete answer is billed");
            assert_eq!(record.cost.0, priced(&usage), "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_body_keeps_its_unknown_top_level_fields_on_the_pass_through_only() {
    // Unknown fields reach the upstream that knows the format; the
    // translations drop what has no counterpart instead of refusing.
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    for b in Backend::ALL {
        let mut body = request(b.model(), false);
        body["service_tier"] = json!("flex");
        body["x_new_knob"] = json!({"level": 3});
        assert_eq!(app.responses(&body).await.status(), 200, "{b:?}");
        let sent: Map<String, Value> = last_at(&mock, b.path()).body.as_object().unwrap().clone();
        assert_eq!(
            sent.contains_key("x_new_knob"),
            b == Backend::Pass,
            "{b:?}: {sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_files_reach_translated_backends_in_their_formats() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let png = "data:image/png;base64,iVBORw0KGgo=";
    let pdf = "data:application/pdf;base64,JVBERi0xLjQ=";
    for b in Backend::ALL {
        let mut body = request(b.model(), false);
        body["input"][0]["content"] = json!([
            {"type": "input_text", "text": "what is in these?"},
            {"type": "input_image", "image_url": png, "detail": "high"},
            {"type": "input_file", "filename": "spec.pdf", "file_data": pdf},
        ]);
        assert_eq!(app.responses(&body).await.status(), 200, "{b:?}");
        let sent = last_at(&mock, b.path()).body;
        match b {
            Backend::Chat => {
                let parts = &sent["messages"][1]["content"];
                assert_eq!(
                    parts[1]["image_url"],
                    json!({"url": png, "detail": "high"}),
                    "{sent}"
                );
                assert_eq!(parts[2]["type"], "file", "{sent}");
                assert_eq!(parts[2]["file"]["file_data"], pdf);
            }
            Backend::Anthropic => {
                let blocks = &sent["messages"][0]["content"];
                assert_eq!(
                    blocks[1]["source"],
                    json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}),
                    "{sent}"
                );
                assert_eq!(blocks[2]["type"], "document", "{sent}");
                assert_eq!(blocks[2]["source"]["media_type"], "application/pdf");
            }
            Backend::Pass => assert_eq!(sent["input"], body["input"], "as sent"),
        }
    }
    // By id, a file exists only on the vendor that stored it.
    let mut body = request("claude", false);
    body["input"][0]["content"] = json!([{"type": "input_image", "file_id": "file-abc"}]);
    let resp = app.responses(&body).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(
        err["error"]["param"], "input[0].content[0].file_id",
        "{err}"
    );
}
