//! The load driver against a real mock upstream on loopback: every API,
//! whole and streamed, in a closed and an open loop.

use std::time::Duration;

use loadtest::drive::{self, Api, Pace};
use loadtest::mock::{Faults, MockOptions};
use serde_json::Value;

use crate::support::{bounded, fast, fast_mock, loadtest, options, APIS};

const CLOSED: Pace = Pace::Closed { clients: 4 };
const OPEN: Pace = Pace::Open {
    rate: 100.0,
    max_in_flight: 1024,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_is_driven_whole_and_streamed_in_a_closed_loop() {
    let mock = fast_mock(None).await;
    for api in APIS {
        for stream in [false, true] {
            let before = mock.request_count();
            let r = drive::run(options(&mock, api, stream, CLOSED))
                .await
                .unwrap();
            let what = format!("{api:?} stream={stream}: {r:?}");
            assert!(r.ok > 0, "{what}");
            assert_eq!(r.errors, 0, "{what}");
            assert_eq!(r.ok, mock.request_count() - before, "{what}");
            assert!(
                r.latency.p50_ms > 0.0 && r.latency.p50_ms <= r.latency.max_ms,
                "{what}"
            );
            assert_eq!(r.ttft.is_some(), stream, "{what}");
            if let Some(t) = &r.ttft {
                assert!(t.p50_ms > 0.0 && t.p50_ms <= r.latency.max_ms, "{what}");
            }
            assert_eq!(r.latency_histogram.len(), r.ok, "{what}");
            assert!(r.open_loop.is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_is_driven_whole_and_streamed_on_an_open_loop_schedule() {
    let mock = fast_mock(None).await;
    for api in APIS {
        for stream in [false, true] {
            let r = drive::run(options(&mock, api, stream, OPEN)).await.unwrap();
            let what = format!("{api:?} stream={stream}: {r:?}");
            let o = r.open_loop.as_ref().unwrap();
            // 100 a second for 300 ms: due at 0, 10, ..., 290 ms.
            assert_eq!(o.sent, 30, "{what}");
            assert_eq!((r.ok, r.errors), (30, 0), "{what}");
            assert_eq!(o.late, 0, "{what}");
            assert_eq!(o.target_rate_per_s, 100.0);
            assert!(
                o.achieved_rate_per_s > 0.0 && o.achieved_rate_per_s <= 100.5,
                "{what}"
            );
            assert!(o.peak_in_flight >= 1, "{what}");
            assert_eq!(r.ttft.is_some(), stream, "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_runs_from_the_scheduled_time_when_the_cap_holds_requests_back() {
    let mock = fast_mock(None).await;
    mock.set_options(MockOptions {
        sim: router::sim::SimConfig {
            latency: Duration::from_millis(50),
            ..fast()
        },
        ..MockOptions::default()
    });
    let mut opts = options(
        &mock,
        Api::Chat,
        false,
        Pace::Open {
            rate: 50.0,
            max_in_flight: 1,
        },
    );
    opts.duration = Duration::from_millis(200);
    let r = drive::run(opts).await.unwrap();
    let o = r.open_loop.as_ref().unwrap();
    // Ten requests due 20 ms apart, each taking at least 50 ms, one at a
    // time: all but the first wait for the slot, and none is dropped.
    assert_eq!((o.sent, r.ok, r.errors), (10, 10, 0), "{r:?}");
    assert_eq!(o.late, 9, "{r:?}");
    assert_eq!(o.peak_in_flight, 1);
    // The last leaves at 450 ms or later, due at 180 ms: its latency counts
    // the wait, as a client on that schedule would see it.
    assert!(r.latency.max_ms >= 320.0, "{r:?}");
    assert!(r.latency.p50_ms >= 150.0, "{r:?}");
    assert!(o.max_send_lag_ms >= 270.0, "{r:?}");
    assert!(o.achieved_rate_per_s < 50.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_read_to_their_terminal_event_and_fail_without_it() {
    let mock = fast_mock(None).await;
    let faults = [
        (
            Faults {
                error_event_after: Some(2),
                ..Faults::default()
            },
            "error_event",
        ),
        (
            Faults {
                disconnect_after: Some(2),
                ..Faults::default()
            },
            "body",
        ),
        (
            Faults {
                status: Some(503),
                ..Faults::default()
            },
            "http_503",
        ),
    ];
    for (fault, kind) in faults {
        mock.set_options(MockOptions {
            sim: fast(),
            faults: fault,
            ..MockOptions::default()
        });
        for api in APIS {
            let r = drive::run(bounded(&mock, api, true, 8)).await.unwrap();
            assert_eq!((r.ok, r.errors), (0, 8), "{api:?} {kind}: {r:?}");
            assert_eq!(r.error_kinds.get(kind), Some(&8), "{api:?} {kind}: {r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_latency_runs_to_the_terminal_event() {
    let mock = fast_mock(None).await;
    // Eight tokens 2.5 ms apart: no stream is over in less than 20 ms.
    mock.set_options(MockOptions {
        sim: router::sim::SimConfig {
            tokens_per_second: 400.0,
            ..fast()
        },
        ..MockOptions::default()
    });
    for api in APIS {
        let r = drive::run(bounded(&mock, api, true, 8)).await.unwrap();
        assert_eq!((r.ok, r.errors), (8, 0), "{api:?}: {r:?}");
        assert!(r.latency_histogram.min() >= 20_000, "{api:?}: {r:?}");
        let ttft = r.ttft.as_ref().unwrap();
        assert!(ttft.p50_ms < r.latency.p50_ms, "{api:?}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_api_presents_its_key_its_own_way() {
    let mock = fast_mock(Some("sk-test")).await;
    for api in APIS {
        let mut opts = bounded(&mock, api, false, 4);
        let denied = drive::run(opts.clone()).await.unwrap();
        assert_eq!(denied.error_kinds.get("http_401"), Some(&4), "{api:?}");
        opts.api_key = Some("sk-test".to_owned());
        if api == Api::Messages {
            // The host root works as well as `/v1`.
            opts.base_url = format!("http://{}", mock.addr());
        }
        let r = drive::run(opts).await.unwrap();
        assert_eq!((r.ok, r.errors), (4, 0), "{api:?}: {r:?}");
        let last = mock.received().pop().unwrap();
        let header = |n: &str| last.headers.get(n).and_then(|v| v.to_str().ok());
        match api {
            Api::Messages => {
                assert_eq!(last.path, "/v1/messages");
                assert_eq!(header("x-api-key"), Some("sk-test"));
                assert_eq!(header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(header("authorization"), None);
                assert!(last.body["max_tokens"].is_u64());
            }
            _ => assert_eq!(header("authorization"), Some("Bearer sk-test")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_prints_its_json_and_draws_progress_only_when_asked() {
    let mock = fast_mock(None).await;
    let dir = std::env::temp_dir().join(format!("loadtest-drive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("drive.svg");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["drive", "--base-url", &mock.base_url(), "--requests", "20"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let out = loadtest(args(&[
        "--api",
        "responses",
        "--stream",
        "--rate",
        "200",
        "--progress",
        "--plot",
        svg.to_str().unwrap(),
        "--warm-up",
        "200ms",
    ]))
    .await;
    assert!(out.status.success(), "{out:?}");
    // 200 ms at 200 a second to warm up, uncounted, then the 20 measured.
    assert_eq!(mock.request_count(), 40 + 20);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The keys the overhead scripts read.
    assert_eq!(report["ok"], 20, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["requests_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(report["latency"]["p99_ms"].as_f64().is_some());
    assert!(report["ttft"]["p99_ms"].as_f64().is_some());
    assert_eq!(report["open_loop"]["sent"], 20, "{report}");
    assert_eq!(report["open_loop"]["late"], 0, "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("20/20 requests"), "{stderr}");
    assert!(stderr.contains("req/s overall"), "{stderr}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(crate::support::well_formed(&plot), Ok("svg".to_owned()));
    assert!(
        plot.contains("open loop, 200 req/s"),
        "the title says the settings"
    );

    // Not a terminal, not asked: no progress line; --quiet: nothing at all.
    for quiet in [&[][..], &["--quiet"][..]] {
        let out = loadtest(args(quiet)).await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that stamps each answer with `x-tollgate-request-id: id-N` and
/// streams it to `[DONE]` for odd N only: even streams end cut short.
async fn stamping_server() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let n = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let n = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let mut body =
                    "data: {\"choices\": [{\"delta\": {\"content\": \"hi\"}}]}\n\n".to_owned();
                if n % 2 == 1 {
                    body.push_str("data: [DONE]\n\n");
                }
                (
                    [
                        ("x-tollgate-request-id", format!("id-{n}")),
                        ("content-type", "text/event-stream".to_owned()),
                    ],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_writes_the_request_ids_of_the_answers_it_read_in_full() {
    let base = stamping_server().await;
    let dir = tempfile_dir("ids");
    let ids = dir.join("ids.txt");
    let out = loadtest(
        [
            "drive",
            "--base-url",
            &base,
            "--stream",
            "--concurrency",
            "1",
            "--requests",
            "10",
            "--ids",
            ids.to_str().unwrap(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["ok"].as_u64(), report["errors"].as_u64()),
        (Some(5), Some(5))
    );
    let mut written: Vec<String> = std::fs::read_to_string(&ids)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    written.sort();
    let mut odd: Vec<String> = [1, 3, 5, 7, 9].iter().map(|n| format!("id-{n}")).collect();
    odd.sort();
    assert_eq!(written, odd, "only the streams that reached [DONE]");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadtest-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
