//! `loadtest compare` against real mock upstreams on loopback: several
//! targets with their own keys, a measured process, the table, the JSON
//! and the plot.

use serde_json::Value;

use crate::support::{fast_mock, loadtest, well_formed};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_every_target_with_its_key_and_measures_a_process() {
    let first = fast_mock(Some("key-a")).await;
    let second = fast_mock(Some("key-b")).await;
    let dir = std::env::temp_dir().join(format!("loadtest-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("compare.svg");
    // Both mocks run in this test's process.
    let pid = std::process::id().to_string();
    let a = format!("mock=http://{}/v1", first.addr());
    let b = format!("mock & co=http://{}/v1", second.addr());
    for (api, stream) in [("chat", false), ("messages", true), ("responses", true)] {
        let mut args = strings(&[
            "compare",
            "--target",
            &a,
            "--target",
            &b,
            "--api-key",
            "key-a",
            "--key",
            "mock & co=key-b",
            "--pid",
            &format!("mock={pid}"),
            "--api",
            api,
            "--duration",
            "400ms",
            "--concurrency",
            "4",
            "--json",
            "--plot",
            svg.to_str().unwrap(),
        ]);
        if stream {
            args.push("--stream".to_owned());
        }
        let out = loadtest(args).await;
        assert!(out.status.success(), "{out:?}");
        let c: Value = serde_json::from_slice(&out.stdout).unwrap();
        let targets = c["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 2, "{c}");
        for t in targets {
            assert!(t["ok"].as_u64().unwrap() > 0, "{api}: {t}");
            assert_eq!(t["errors"], 0, "{api}: {t}");
            assert_eq!(t["api"], api);
            assert_eq!(t["ttft"].is_object(), stream, "{t}");
            assert!(t["latency"]["p90_ms"].as_f64().unwrap() > 0.0);
        }
        assert_eq!(targets[0]["name"], "mock");
        assert_eq!(targets[0]["ratio_to_first"], 1.0);
        assert!(targets[1]["ratio_to_first"].as_f64().unwrap() > 0.0);
        let process = &targets[0]["process"];
        assert_eq!(process["pid"].to_string(), pid, "{c}");
        assert!(process["cpu_us_per_request"].as_f64().unwrap() >= 0.0);
        let (end, peak) = (
            process["rss_end_mib"].as_f64().unwrap(),
            process["rss_peak_mib"].as_f64().unwrap(),
        );
        assert!(end > 0.0 && peak >= end, "{process}");
        assert!(targets[1]["process"].is_null());

        let plot = std::fs::read_to_string(&svg).unwrap();
        assert_eq!(well_formed(&plot), Ok("svg".to_owned()), "{plot}");
        assert_eq!(plot.matches("<polyline").count(), 2, "one line a target");
        assert!(
            plot.contains(">mock &amp; co<"),
            "the legend names each target"
        );
        assert!(
            plot.contains(&format!("{api} (")),
            "the title says the settings"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_prints_a_side_by_side_table() {
    let mock = fast_mock(None).await;
    let url = mock.base_url();
    let out = loadtest(strings(&[
        "compare",
        "--target",
        &format!("direct={url}"),
        "--target",
        &url,
        "--rate",
        "100",
        "--duration",
        "300ms",
        "--stream",
        "--pid",
        &format!("direct={}", std::process::id()),
    ]))
    .await;
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "settings, header and one row a target:\n{table}"
    );
    assert!(
        lines[0].starts_with("chat (streamed), open loop, 100 req/s"),
        "{table}"
    );
    for column in [
        "req/s",
        "ratio",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "ttft p50",
        "ttft p99",
        "errors",
        "late",
        "sent/s",
        "CPU µs/req",
        "RSS MiB",
        "peak MiB",
    ] {
        assert!(lines[1].contains(column), "{column}:\n{table}");
    }
    assert!(
        lines[2].starts_with("direct ") && lines[2].contains(" 1.00 "),
        "{table}"
    );
    // A bare URL is named by its host and port; it has no process.
    assert!(lines[3].starts_with(&mock.addr().to_string()), "{table}");
    assert!(lines[3].trim_end().ends_with('-'), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_refuses_a_process_it_cannot_read_before_sending_anything() {
    let mock = fast_mock(None).await;
    let out = loadtest(strings(&[
        "compare",
        "--target",
        &format!("first={}", mock.base_url()),
        "--target",
        &format!("second={}", mock.base_url()),
        "--pid",
        "second=4294967295",
        "--duration",
        "1s",
    ]))
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("second: process 4294967295"), "{stderr}");
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_refuses_a_key_or_pid_for_no_target() {
    for flag in ["--key", "--pid"] {
        let out = loadtest(strings(&[
            "compare",
            "--target",
            "a=http://127.0.0.1:9/v1",
            flag,
            "b=1",
            "--duration",
            "1s",
        ]))
        .await;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no target is named 'b'"), "{stderr}");
    }
}
