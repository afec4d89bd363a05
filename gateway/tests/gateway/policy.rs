//! Policies end to end: organization, team and key allow and deny lists
//! narrow routes, refuse what they exclude in the client's format, hide it
//! from the model list, and reach the gateway within a second of a change.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// Two vendors behind one cheapest route: `ds` (provider `deepseek`, cheap)
/// and `k2` (provider `kimi`, dearer).
async fn two_vendors() -> (
    loadtest::mock::MockHandle,
    loadtest::mock::MockHandle,
    TestApp,
) {
    let (ds, kimi) = (spawn_fast_mock().await, spawn_fast_mock().await);
    let cfg = config(&format!(
        "[billing]\nkey_refresh_interval = \"100ms\"\n\
         [providers.deepseek]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [providers.kimi]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.ds]\nprovider = \"deepseek\"\ninput_per_mtok = 0.5\noutput_per_mtok = 0.5\n\
         [models.k2]\nprovider = \"kimi\"\ninput_per_mtok = 2.0\noutput_per_mtok = 2.0\n\
         [routes.auto]\ncandidates = [\"ds\", \"k2\"]\nstrategy = \"cheapest\"\n",
        ds.base_url(),
        kimi.base_url()
    ));
    (ds, kimi, spawn_app(cfg).await)
}

async fn create(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, v) = app.admin(reqwest::Method::POST, path, body).await;
    assert_eq!(status, 201, "{path}: {v}");
    v
}

async fn patch(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, v) = app.admin(reqwest::Method::PATCH, path, body).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// Who served a chat request for `model` with `key`: the status, the
/// provider header, and the body.
async fn served(app: &TestApp, key: &str, model: &str) -> (u16, String, Value) {
    let resp = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let provider = resp
        .headers()
        .get("x-tollgate-provider")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, provider, resp.json().await.unwrap())
}

async fn listed(app: &TestApp, key: &str) -> Vec<String> {
    let list = app.get_json_as(key, "/v1/models").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls until `check` holds, for at most `within`.
async fn within<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < until,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_deny_list_keeps_a_vendor_out_of_every_route() {
    let (ds, kimi, app) = two_vendors().await;
    let org = create(&app, "/admin/orgs", json!({"name": "acme"})).await;
    let walled = create(
        &app,
        "/admin/teams",
        json!({"org_id": org["id"], "name": "walled", "denied_providers": ["deepseek"]}),
    )
    .await;
    assert_eq!(walled["denied_providers"], json!(["deepseek"]));
    let open = create(
        &app,
        "/admin/teams",
        json!({"org_id": org["id"], "name": "open"}),
    )
    .await;
    let key_of = |team: &Value| json!({"team_id": team["id"]});
    let walled_key = create(&app, "/admin/keys", key_of(&walled)).await;
    let open_key = create(&app, "/admin/keys", key_of(&open)).await;
    let (wk, ok) = (
        walled_key["key"].as_str().unwrap(),
        open_key["key"].as_str().unwrap(),
    );

    // The open team gets the cheapest vendor; the walled one the other.
    assert_eq!(served(&app, ok, "auto").await.1, "deepseek");
    let (status, provider, _) = served(&app, wk, "auto").await;
    assert_eq!((status, provider.as_str()), (200, "kimi"));
    assert_eq!((ds.request_count(), kimi.request_count()), (1, 1));

    // Asking for the denied model by name: 403 that names the policy.
    let (status, _, err) = served(&app, wk, "ds").await;
    assert_eq!(status, 403);
    assert_eq!(err["error"]["code"], "model_not_allowed");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the team's policy denies provider 'deepseek'"),
        "{msg}"
    );
    // The same through the Anthropic door, in Anthropic's shape.
    let resp = app
        .http
        .post(app.url("/v1/messages"))
        .header("x-api-key", wk)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "ds", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "permission_error");
    // The route still works there, on the allowed vendor.
    let resp = app
        .http
        .post(app.url("/v1/messages"))
        .header("x-api-key", wk)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-provider"], "kimi");
    assert_eq!(
        ds.request_count(),
        1,
        "nothing of the walled team's reached deepseek"
    );

    // The model list shows only what the caller may use.
    let mut names = listed(&app, wk).await;
    names.sort();
    assert_eq!(names, ["auto", "k2"]);
    assert_eq!(listed(&app, ok).await.len(), 3);

    // An organization's policy applies to all its teams, within a second.
    patch(
        &app,
        &format!("/admin/orgs/{}", org["id"].as_str().unwrap()),
        json!({"denied_providers": ["kimi"]}),
    )
    .await;
    within(
        Duration::from_secs(1),
        "the org policy to apply",
        || async { served(&app, wk, "auto").await.0 == 403 },
    )
    .await;
    let (_, _, err) = served(&app, wk, "auto").await;
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'ds': the team's policy denies provider 'deepseek'")
            && msg.contains("'k2': the organization's policy denies provider 'kimi'"),
        "{msg}"
    );
    assert_eq!(served(&app, ok, "auto").await.1, "deepseek");
    assert!(listed(&app, wk).await.is_empty());

    // A misspelt name is refused rather than denying nothing.
    let (status, err) = app
        .admin(
            reqwest::Method::PATCH,
            &format!("/admin/teams/{}", walled["id"].as_str().unwrap()),
            json!({"denied_providers": ["deepsek"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "denied_providers");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'deepsek'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_allow_lists_admit_whole_routes_or_single_models() {
    let (_ds, _kimi, app) = two_vendors().await;
    let org = create(&app, "/admin/orgs", json!({"name": "acme"})).await;
    let team = create(
        &app,
        "/admin/teams",
        json!({"org_id": org["id"], "name": "t"}),
    )
    .await;
    // Allowed a model only: a route narrows to it.
    let only_k2 = create(
        &app,
        "/admin/keys",
        json!({"team_id": team["id"], "allowed_models": ["k2"]}),
    )
    .await;
    let k = only_k2["key"].as_str().unwrap();
    assert_eq!(served(&app, k, "auto").await.1, "kimi");
    assert_eq!(served(&app, k, "k2").await.0, 200);
    assert_eq!(served(&app, k, "ds").await.0, 403);
    // Allowed the route: every candidate, but not the models by name.
    let only_auto = create(
        &app,
        "/admin/keys",
        json!({"team_id": team["id"], "allowed_models": ["auto"]}),
    )
    .await;
    let a = only_auto["key"].as_str().unwrap();
    assert_eq!(served(&app, a, "auto").await.1, "deepseek");
    assert_eq!(served(&app, a, "k2").await.0, 403);
    let mut names = listed(&app, a).await;
    names.sort();
    assert_eq!(names, ["auto"]);
    // A key's change applies on this replica at once.
    let id = only_auto["id"].as_str().unwrap();
    let changed = patch(
        &app,
        &format!("/admin/keys/{id}"),
        json!({"allowed_models": null, "denied_models": ["ds"]}),
    )
    .await;
    assert_eq!(changed["allowed_models"], Value::Null);
    assert_eq!(changed["denied_models"], json!(["ds"]));
    assert_eq!(served(&app, a, "auto").await.1, "kimi");
    assert_eq!(served(&app, a, "k2").await.0, 200);
    // Reading back what is set, and /v1/me for the key holder.
    let (status, got) = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/keys/{id}"),
            json!({}),
        )
        .await;
    assert_eq!((status, &got["denied_models"]), (200, &json!(["ds"])));
    let me = app.get_json_as(a, "/v1/me").await;
    assert_eq!(me["key"]["denied_models"], json!(["ds"]));
    assert_eq!(me["team"]["denied_providers"], json!([]));
    // Bad bodies: a field nobody knows, a list that is not a list.
    for bad in [json!({"colour": "blue"}), json!({"denied_models": "ds"})] {
        let (status, err) = app
            .admin(reqwest::Method::PATCH, &format!("/admin/keys/{id}"), bad)
            .await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
    let (status, _) = app
        .admin(reqwest::Method::PATCH, "/admin/keys/nope", json!({}))
        .await;
    assert_eq!(status, 404);
}
