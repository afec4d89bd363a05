//! `promtool check metrics` (Prometheus's own linter) on a real gateway's
//! `/metrics` after mixed traffic: several teams, a stream, a fallback, a
//! refusal. promtool comes from Debian's `prometheus` package: under `CI` a
//! missing promtool fails the test; elsewhere it is skipped with the reason.

use std::io::Write;
use std::process::{Command, Stdio};

use loadtest::mock::{Faults, MockOptions};
use serde_json::json;

use super::*;

/// Every metric family the traffic below must have made appear.
const FAMILIES: &[&str] = &[
    "tollgate_http_requests_total",
    "tollgate_requests_total",
    "tollgate_request_duration_seconds",
    "tollgate_time_to_first_token_seconds",
    "tollgate_time_per_output_token_seconds",
    "tollgate_gateway_overhead_seconds",
    "tollgate_tokens_total",
    "tollgate_upstream_errors_total",
    "tollgate_streams_total",
    "tollgate_streams_open",
    "tollgate_requests_in_flight",
    "tollgate_connections_open",
    "tollgate_cost_usd_total",
    "tollgate_reference_cost_usd_total",
    "tollgate_ledger_spool_errors_total",
    "tollgate_ledger_backlog_bytes",
    "tollgate_ledger_rows",
    "tollgate_route_choices_total",
    "tollgate_fallbacks_total",
    "tollgate_breaker_state",
    "tollgate_quota_rejections_total",
    "tollgate_budget_usd",
    "tollgate_budget_tokens",
    "tollgate_budget_reset_timestamp_seconds",
    "tollgate_team_info",
];

/// What promtool says of `text`: whether it is clean, and its output.
/// `None` when promtool is not installed (outside CI only).
fn promtool_check(text: &str) -> Option<(bool, String)> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but promtool is not installed (Debian's `prometheus` package): the metrics lint must run in CI"
            );
            eprintln!("skipping promtool check metrics: promtool is not installed (apt-get install prometheus)");
            return None;
        }
        Err(e) => panic!("promtool does not start: {e}"),
    };
    // Written then closed, so promtool reads to the end.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success() && said.trim().is_empty(), said))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_wrong_with_metrics_after_mixed_traffic() {
    let bad = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            status: Some(500),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let good = spawn_fast_mock().await;
    let cfg = config(&format!(
        "[billing]\nkey_refresh_interval = \"100ms\"\n\
         [providers.p0]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [providers.p1]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m0]\nprovider = \"p0\"\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n\
         [models.m1]\nprovider = \"p1\"\ninput_per_mtok = 0.5\noutput_per_mtok = 1.0\n\
         [routes.auto]\ncandidates = [\"m0\", \"m1\"]\nreference_model = \"m0\"\n\
         [metrics]\nper_key = true\n",
        bad.base_url(),
        good.base_url()
    ));
    let app = spawn_app(cfg).await;
    let (status, _) = app
        .admin(
            reqwest::Method::POST,
            "/admin/orgs",
            json!({"name": "acme", "budget": {"limit_usd": 100.0, "period": "daily", "enforcement": "soft"}}),
        )
        .await;
    assert_eq!(status, 201);
    let budgeted = json!({"budget": {"limit_usd": 5.0, "limit_tokens": 100000,
                                     "period": "monthly", "enforcement": "hard"}});
    let named = json!({"name": "search \"bot\""});
    let (_, _, search, _) = tenant(&app, ("acme", "search"), budgeted, named).await;
    let (_, _, ads, _) = tenant(&app, ("acme", "ads"), json!({}), json!({})).await;
    let (_, _, broke, _) = tenant(&app, ("globex", "broke"), no_budget(), json!({})).await;

    // A fallback (m0 fails, m1 answers), a stream, a refusal, the master
    // key, and a model nobody configured.
    let resp = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&search)
        .json(&chat_body("auto"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            resp.status().as_u16(),
            &resp.headers()["x-tollgate-attempts"]
        ),
        (200, &reqwest::header::HeaderValue::from_static("2"))
    );
    let mut body = chat_body("m1");
    body["stream"] = json!(true);
    let streamed = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&ads)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(read_sse(streamed).await.last().unwrap(), "[DONE]");
    assert_eq!(chat_as(&app, &broke, "m1").await, 429);
    assert_eq!(chat_as(&app, MASTER_KEY, "m1").await, 200);
    assert_eq!(chat_as(&app, MASTER_KEY, "nope").await, 404);

    let text = app.metrics().await;
    for family in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} is missing from\n{text}"
        );
    }
    assert!(text.contains(r#"key="search \"bot\"""#), "escaped: {text}");
    let Some((clean, said)) = promtool_check(&text) else {
        return;
    };
    assert!(
        clean,
        "promtool check metrics complains:\n{said}\n---\n{text}"
    );
}

#[test]
fn promtool_check_catches_what_it_is_there_to_catch() {
    let bad = "# HELP x_count A counter.\n# TYPE x_count counter\nx_count 1\n";
    let Some((clean, said)) = promtool_check(bad) else {
        return;
    };
    assert!(!clean && said.contains("_total"), "{said}");
}
