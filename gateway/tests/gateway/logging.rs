//! Every error Tollgate answers is one access-log line (`request refused`
//! at info for 4xx, `request failed` at warn for 5xx) with the method, path,
//! status, error code and caller, and no secret in any line: checked on the
//! real binary's log.

use std::net::SocketAddr;

use loadtest::mock::{MockHandle, MockOptions};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::Gateway;

/// A config for the real binary: `m` on the mock (which wants its key),
/// `dead` on a port nothing listens on.
fn process_config(
    dir: &std::path::Path,
    mock: &MockHandle,
    closed: SocketAddr,
) -> std::path::PathBuf {
    let path = dir.join("tollgate.toml");
    let d = dir.display();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmaster_key = \"{MASTER_KEY}\"\n\
         [database]\nurl = \"sqlite://{d}/tollgate.db\"\n[ledger]\nspool_dir = \"{d}/spool\"\nflush_interval = \"5ms\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key = \"sk-vendor-abcdef123456\"\n\
         [providers.gone]\nkind = \"openai\"\nbase_url = \"http://{closed}/v1\"\napi_key = \"sk-gone-99887766\"\n\
         [models.m]\nprovider = \"up\"\n[models.dead]\nprovider = \"gone\"\n",
        base = mock.base_url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The access-log lines for request `id` with `message`.
fn lines_for(gw: &Gateway, id: &str, message: &str) -> Vec<String> {
    gw.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(id) && l.contains(&format!(": {message} request_id=")))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_logged_once_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        api_key: Some("sk-vendor-abcdef123456".into()),
        ..Default::default()
    })
    .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = Gateway::start(&process_config(dir.path(), &mock, closed));
    let base = format!("http://{}", gw.addr);
    let client = http_client();
    let admin = |path: &'static str, body: Value| {
        let req = client
            .post(format!("{base}{path}"))
            .bearer_auth(MASTER_KEY)
            .json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let org = admin("/admin/orgs", json!({"name": "acme"})).await;
    let team = admin("/admin/teams", json!({"org_id": org["id"], "name": "t"})).await;
    let key = admin("/admin/keys", json!({"team_id": team["id"]})).await;
    let secret = key["key"].as_str().unwrap().to_owned();
    let key_id = key["id"].as_str().unwrap().to_owned();
    // A key whose team's hard budget cannot pay for any request.
    let budget = json!({"limit_tokens": 1, "period": "daily", "enforcement": "hard"});
    let poor = admin(
        "/admin/teams",
        json!({"org_id": org["id"], "name": "poor", "budget": budget}),
    )
    .await;
    let spent = admin("/admin/keys", json!({"team_id": poor["id"]})).await;
    let spent_secret = spent["key"].as_str().unwrap().to_owned();
    let wrong = format!("{secret}x");

    // (path, key, body, status, level, message, error code, caller)
    let cases = [
        (
            "/v1/chat/completions?token=query-secret-1234",
            wrong.as_str(),
            chat_body("m"),
            401,
            " INFO ",
            "request refused",
            "invalid_api_key",
            "anonymous",
        ),
        (
            "/v1/chat/completions",
            secret.as_str(),
            chat_body("nope"),
            404,
            " INFO ",
            "request refused",
            "model_not_found",
            "key",
        ),
        (
            "/v1/responses",
            MASTER_KEY,
            json!({"model": "m", "input": 5}),
            400,
            " INFO ",
            "request refused",
            "invalid_value",
            "master",
        ),
        (
            "/v1/responses",
            spent_secret.as_str(),
            json!({"model": "m", "input": "hi"}),
            429,
            " INFO ",
            "request refused",
            "insufficient_quota",
            "key",
        ),
        (
            "/v1/chat/completions",
            secret.as_str(),
            chat_body("dead"),
            502,
            " WARN ",
            "request failed",
            "upstream_unreachable",
            "key",
        ),
    ];
    for (path, key, body, status, level, message, code, caller) in cases {
        let resp = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let id = resp.headers()["x-tollgate-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        eventually(&format!("the {status} is logged"), async || {
            !lines_for(&gw, &id, message).is_empty()
        })
        .await;
        let lines = lines_for(&gw, &id, message);
        assert_eq!(lines.len(), 1, "logged once: {lines:?}");
        let line = &lines[0];
        let bare = path.split('?').next().unwrap();
        assert!(line.contains(level), "{status} at{level}: {line}");
        for field in [
            "method=POST".to_owned(),
            format!("path=\"{bare}\" "),
            format!("status={status} "),
            format!("error=\"{code}\" "),
            format!("caller=\"{caller}\" "),
        ] {
            assert!(line.contains(&field), "{field} in {line}");
        }
        if caller == "key" && status != 429 {
            assert!(
                line.contains(&key_id),
                "the key's id names the caller: {line}"
            );
        }
        if status < 500 {
            // A refusal is one line, however far the request got.
            let all: Vec<String> = gw
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(&id))
                .cloned()
                .collect();
            assert_eq!(all, lines, "{status} is one log line");
        }
        // No other access-log line for it, at any level.
        let other = if message == "request refused" {
            "request failed"
        } else {
            "request refused"
        };
        assert!(
            lines_for(&gw, &id, other).is_empty(),
            "{status} logged as {other}"
        );
    }
    let log = gw.logged();
    let hash = billing::tenancy::hash_secret(&secret);
    for (what, s) in [
        ("master key", MASTER_KEY),
        ("virtual key", secret.as_str()),
        ("spent virtual key", spent_secret.as_str()),
        ("key hash", hash.as_str()),
        ("provider key", "sk-vendor-abcdef123456"),
        ("unreachable provider's key", "sk-gone-99887766"),
        ("query string", "query-secret-1234"),
    ] {
        assert!(!log.contains(s), "the {what} reached the log:\n{log}");
    }
}
