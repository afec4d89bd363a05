//! Responses streams on every backend kind: OpenAI's event sequence, usage
//! on the terminal event, and exactly one terminal event however the stream
//! ends: complete, cut by the upstream (disconnect, error event, malformed
//! event, silence), by the gateway's shutdown or by the client.

use async_openai::types::responses::{
    CreateResponseArgs, OutputItem, OutputMessageContent, ResponseStreamEvent, Status,
};
use futures_util::StreamExt;
use loadtest::mock::Faults;
use router::estimate::count_text;
use router::provider::TimeoutPhase;
use router::relay::End;
use router::sim::SimConfig;
use router::UsageSource;
use serde_json::Value;

use super::*;

const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Parses a Responses stream and asserts its shape: every event named for
/// its type and readable by the OpenAI client crate's event types,
/// `response.created` and `response.in_progress` first, exactly one
/// terminal event and it last, every item added is done before it (unless
/// the stream failed), and sequence numbers 0, 1, 2, ...
pub(crate) fn assert_sequence(text: &str) -> Vec<(String, Value)> {
    let events = named_events(text);
    assert!(events.len() >= 3, "too short a stream: {text}");
    for (n, (name, data)) in events.iter().enumerate() {
        assert_eq!(
            data["type"],
            name.as_str(),
            "event {n} is named for its type: {text}"
        );
        assert_eq!(data["sequence_number"], n as u64, "event {n}: {text}");
        if let Err(e) = serde_json::from_value::<ResponseStreamEvent>(data.clone()) {
            panic!("event {n} is not what OpenAI's clients read ({e}): {data}");
        }
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..2],
        ["response.created", "response.in_progress"],
        "{names:?}"
    );
    let terminals = names.iter().filter(|n| TERMINAL.contains(n)).count();
    assert_eq!(terminals, 1, "exactly one terminal event: {names:?}");
    let last = *names.last().unwrap();
    assert!(
        TERMINAL.contains(&last),
        "the terminal event is last: {names:?}"
    );
    if last != "response.failed" {
        let count = |kind: &str| names.iter().filter(|n| **n == kind).count();
        assert_eq!(
            count("response.output_item.added"),
            count("response.output_item.done"),
            "every item is finished: {names:?}"
        );
    }
    events
}

/// The terminal event of a well-formed stream.
pub(crate) fn terminal(text: &str) -> Value {
    assert_sequence(text).pop().unwrap().1
}

/// The text the client was streamed.
fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_stream_follows_openais_event_sequence_on_every_backend() {
    let sim = thinking_sim();
    let mock = mock_with(sim.clone(), Faults::default()).await;
    let mut app = spawn_app(backends(&mock, "")).await;
    let mut billed = Vec::new();
    for b in Backend::ALL {
        let what = format!("{b:?}");
        let resp = app.responses(&request(b.model(), true)).await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let text = resp.text().await.unwrap();
        let events = assert_sequence(&text);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        for kind in [
            "response.output_item.added",
            "response.reasoning_summary_text.delta",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
        ] {
            assert!(names.contains(&kind), "{what}: no {kind} in {names:?}");
        }
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "response.completed", "{what}");
        let response = &last["response"];
        assert_eq!(response["status"], "completed");
        assert_eq!(response["model"], b.model(), "{what}");
        for (_, e) in &events {
            if let Some(r) = e.get("response") {
                assert_eq!(
                    r["model"],
                    b.model(),
                    "{what}: every event names the asked model"
                );
            }
        }
        let (usage, plan) = b.mock_usage(&mock, &sim);
        assert_eq!(streamed_text(&events), words(&plan), "{what}");
        assert_eq!(output_text(response), words(&plan), "{what}");
        assert_eq!(items_of(response, "reasoning").len(), 1, "{what}");
        assert_usage_json(&response["usage"], &usage, &what);
        // Codex takes each item whole from its done event.
        let done: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "response.output_item.done")
            .map(|(_, e)| &e["item"])
            .collect();
        assert_eq!(
            done,
            response["output"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            "{what}"
        );

        let record = app.next_record().await;
        assert!(record.ctx.stream);
        assert_eq!(record.ctx.endpoint(), "responses");
        assert_eq!(record.end, End::Complete, "{what}");
        assert_eq!(record.usage_source, UsageSource::Provider, "{what}");
        assert_eq!(record.usage, usage, "{what}");
        assert_eq!(record.cost.0, priced(&usage), "{what}");
        assert!(record.ttft.is_some(), "{what}");
        billed.push(usage);
    }
    assert_eq!(
        last_at(&mock, "/v1/chat/completions").body["stream_options"]["include_usage"],
        true,
        "the chat upstream is asked for usage"
    );
    assert_eq!(last_at(&mock, "/v1/messages").body["stream"], true);
    let rows = rows(&app.db, 3).await;
    for ((row, b), usage) in rows.iter().zip(Backend::ALL).zip(&billed) {
        assert_eq!((row.provider.as_str(), row.stream), (b.provider(), true));
        assert_eq!(row.endpoint, "responses");
        assert!(!row.estimated);
        assert_eq!(&row.usage, usage, "{b:?}: the provider's figures");
        assert_eq!(row.cost, priced(usage));
    }
}

/// How the upstream fails, and the end the record must show.
struct Failure {
    name: &'static str,
    faults: Faults,
    provider_extra: &'static str,
    end: fn(&End) -> bool,
}

fn failures() -> Vec<Failure> {
    vec![
        Failure {
            name: "disconnect",
            faults: Faults {
                disconnect_after: Some(5),
                ..Default::default()
            },
            provider_extra: "",
            end: |e| matches!(e, End::UpstreamDisconnected(_)),
        },
        Failure {
            name: "error event",
            faults: Faults {
                error_event_after: Some(5),
                ..Default::default()
            },
            provider_extra: "",
            end: |e| *e == End::UpstreamError,
        },
        Failure {
            name: "malformed event",
            faults: Faults {
                malformed_after: Some(5),
                ..Default::default()
            },
            provider_extra: "",
            end: |e| matches!(e, End::Malformed(_)),
        },
        Failure {
            name: "idle timeout",
            faults: Faults {
                stall_after: Some(5),
                ..Default::default()
            },
            provider_extra: "timeouts = { idle = \"300ms\" }",
            end: |e| *e == End::Timeout(TimeoutPhase::Idle),
        },
    ]
}

/// Asserts a stream ended with `response.failed` carrying an error code,
/// and returns the text streamed before it.
fn assert_failed(text: &str, what: &str) -> String {
    let events = assert_sequence(text);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.failed", "{what}: {text}");
    let response = &last["response"];
    assert_eq!(response["status"], "failed", "{what}");
    let code = response["error"]["code"].as_str().unwrap_or("");
    assert!(
        !code.is_empty(),
        "{what}: an error code for the agent: {last}"
    );
    assert!(response["error"]["message"].is_string(), "{what}: {last}");
    streamed_text(&events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_ends_with_one_terminal_event_however_the_upstream_fails() {
    for failure in failures() {
        let mock = mock_with(fast_sim(), failure.faults.clone()).await;
        let mut app = spawn_app(backends(&mock, failure.provider_extra)).await;
        for b in Backend::ALL {
            let what = format!("{} on {b:?}", failure.name);
            let resp = app.responses(&request(b.model(), true)).await;
            assert_eq!(resp.status(), 200, "{what}");
            let text = resp.text().await.unwrap();
            let sent = assert_failed(&text, &what);
            assert!(!sent.is_empty(), "{what}: some text arrived first");

            let record = app.next_record().await;
            assert!((failure.end)(&record.end), "{what}: {:?}", record.end);
            assert_eq!(record.status, 200, "{what}");
            assert_eq!(
                record.usage_source,
                UsageSource::Estimated,
                "{what}: the upstream reported no (full) usage"
            );
            assert!(record.usage.input > 0, "{what}: the prompt is billed");
            assert_eq!(
                record.usage.output,
                count_text(&sent),
                "{what}: what was streamed is billed"
            );
            assert!(record.cost.0 > 0, "{what}");
        }
        let rows = rows(&app.db, 3).await;
        assert!(
            rows.iter().all(|r| r.estimated && r.stream),
            "{}: {rows:#?}",
            failure.name
        );
        assert!(
            app.try_record().is_none(),
            "{}: one record each",
            failure.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_still_open_at_shutdown_ends_with_response_failed() {
    for b in Backend::ALL {
        let mock = mock_with(
            fast_sim(),
            Faults {
                hold_after: Some(5),
                ..Default::default()
            },
        )
        .await;
        let mut cfg = backends(&mock, "");
        cfg.server.shutdown_grace = std::time::Duration::from_millis(200);
        let mut app = spawn_app(cfg).await;
        let resp = app.responses(&request(b.model(), true)).await;
        assert_eq!(resp.status(), 200, "{b:?}");
        let mut body = resp.bytes_stream();
        let mut seen = String::new();
        while !seen.contains("response.output_text.delta") {
            let piece = next_piece(&mut body).await.expect("the stream goes on");
            seen.push_str(std::str::from_utf8(&piece).unwrap());
        }
        app.begin_shutdown();
        while let Some(piece) = next_piece(&mut body).await {
            seen.push_str(std::str::from_utf8(&piece).unwrap());
        }
        let sent = assert_failed(&seen, &format!("shutdown on {b:?}"));
        let record = app.next_record().await;
        assert_eq!(record.end, End::Shutdown, "{b:?}");
        assert_eq!(record.usage_source, UsageSource::Estimated, "{b:?}");
        assert!(record.usage.input > 0);
        assert_eq!(record.usage.output, count_text(&sent), "{b:?}");
        rows(&app.db, 1).await;
        app.shutdown().await.unwrap();
        mock.release();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_stream_the_client_leaves_is_billed_as_estimated() {
    for b in Backend::ALL {
        let mock = mock_with(
            SimConfig {
                output_tokens: 40,
                ..fast_sim()
            },
            Faults {
                hold_after: Some(8),
                ..Default::default()
            },
        )
        .await;
        let mut app = spawn_app(backends(&mock, "")).await;
        let resp = app.responses(&request(b.model(), true)).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let mut seen = String::new();
        while seen.matches("event: response.output_text.delta").count() < 3 {
            let piece = next_piece(&mut body).await.expect("the stream goes on");
            seen.push_str(std::str::from_utf8(&piece).unwrap());
        }
        drop(body);
        let record = app.next_record().await;
        assert_eq!(record.end, End::ClientDisconnected, "{b:?}");
        assert_eq!(record.usage_source, UsageSource::Estimated, "{b:?}");
        assert!(record.usage.input > 0, "{b:?}: the prompt is billed");
        assert!(
            record.usage.output >= 3,
            "{b:?}: the words streamed are billed, got {}",
            record.usage.output
        );
        let rows = rows(&app.db, 1).await;
        assert!(rows[0].estimated && rows[0].cost > 0, "{rows:?}");
        assert_eq!(rows[0].endpoint, "responses");
        mock.release();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_client_crate_reads_answers_and_streams_on_every_backend() {
    let sim = thinking_sim();
    let mock = mock_with(sim.clone(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let client = app.openai();
    for b in Backend::ALL {
        let request = CreateResponseArgs::default()
            .model(b.model())
            .instructions("Be brief.")
            .input("hello gateway")
            .build()
            .unwrap();
        let answer = client.responses().create(request.clone()).await.unwrap();
        assert_eq!(answer.status, Status::Completed, "{b:?}");
        assert_eq!(answer.model, b.model());
        let (usage, plan) = b.mock_usage(&mock, &sim);
        let text: String = answer
            .output
            .iter()
            .filter_map(|item| match item {
                OutputItem::Message(m) => Some(m),
                _ => None,
            })
            .flat_map(|m| m.content.iter())
            .filter_map(|c| match c {
                OutputMessageContent::OutputText(t) => Some(t.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, words(&plan), "{b:?}");
        let reported = answer.usage.expect("usage");
        assert_eq!(u64::from(reported.output_tokens), usage.output, "{b:?}");

        let mut stream = client.responses().create_stream(request).await.unwrap();
        let (mut streamed, mut completed) = (String::new(), None);
        while let Some(event) = stream.next().await {
            match event.unwrap_or_else(|e| panic!("{b:?}: {e}")) {
                ResponseStreamEvent::ResponseOutputTextDelta(d) => streamed.push_str(&d.delta),
                ResponseStreamEvent::ResponseCompleted(c) => completed = Some(c.response),
                _ => {}
            }
        }
        assert_eq!(streamed, words(&plan), "{b:?}");
        let completed = completed.expect("response.completed");
        assert_eq!(completed.status, Status::Completed);
        assert_eq!(
            u64::from(completed.usage.unwrap().output_tokens),
            usage.output
        );
    }
}
