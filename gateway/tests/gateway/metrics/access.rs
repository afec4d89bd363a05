//! Who may read `/metrics`, which names organizations and teams: anyone by
//! default (Prometheus scrapes it inside the cluster), and only the
//! `[metrics] token` or the master key once a token is set.

use serde_json::json;

use crate::helpers::*;

const TOKEN: &str = "scrape-token-0123456789";

#[tokio::test]
async fn metrics_are_open_by_default_and_behind_the_token_once_one_is_set() {
    let open = spawn_app(config("")).await;
    let resp = open.http.get(open.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let app = spawn_app(config(&format!("[metrics]\ntoken = \"{TOKEN}\"\n"))).await;
    let scrape = |token: Option<&str>| {
        let mut req = app.http.get(app.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let resp = scrape(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[metrics] token"),
        "{body}"
    );
    assert_eq!(scrape(Some("wrong-token")).await.unwrap().status(), 401);
    let resp = scrape(Some(TOKEN)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("tollgate_requests_in_flight"));
    assert_eq!(scrape(Some(MASTER_KEY)).await.unwrap().status(), 200);

    // A team's virtual key reads its own spend elsewhere, not every team's.
    let (_, key) = {
        let (_, org) = app
            .admin(reqwest::Method::POST, "/admin/orgs", json!({"name": "o"}))
            .await;
        let (_, team) = app
            .admin(
                reqwest::Method::POST,
                "/admin/teams",
                json!({"org_id": org["id"], "name": "t"}),
            )
            .await;
        app.admin(
            reqwest::Method::POST,
            "/admin/keys",
            json!({"team_id": team["id"]}),
        )
        .await
    };
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(scrape(Some(&key)).await.unwrap().status(), 401);
    // The probes stay open.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
