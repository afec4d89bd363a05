//! What the spend page stands on: `/v1/spend` scoped to the caller (a team
//! key sees its own team only, refused with 403 beyond it), the team view
//! (`/v1/spend/teams/{id}`: budgets with projections, keys), and `/ui`
//! served from the binary with its security headers.

use serde_json::{json, Value};

use crate::helpers::*;

/// Everything, from before the tests to long after them.
const ALL_TIME: &str = "from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";

/// Two priced models on the mock, and a route over the cheap one that
/// counts savings against the dear one.
fn spend_config(mock: &loadtest::mock::MockHandle) -> gateway::Config {
    config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.cheap]\nprovider = \"up\"\nupstream_model = \"up-cheap\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n\
         [models.dear]\nprovider = \"up\"\nupstream_model = \"up-dear\"\ninput_per_mtok = 5.0\noutput_per_mtok = 15.0\n\
         [routes.auto]\ncandidates = [\"cheap\"]\nreference_model = \"dear\"\n",
        mock.base_url()
    ))
}

/// Waits until the ledger's report counts `n` requests.
async fn wait_for_requests(app: &TestApp, n: i64) {
    eventually("the ledger has every request", async || {
        let (_, v) = app
            .get_as(MASTER_KEY, &format!("/admin/spend?{ALL_TIME}"))
            .await;
        v["total"]["requests"] == n
    })
    .await;
}

fn rows(report: &Value) -> &Vec<Value> {
    report["data"].as_array().expect("a data array")
}

/// Asserts a 403 that says the report is beyond the caller's team.
fn assert_out_of_scope(status: u16, body: &Value, naming: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(body["error"]["code"], "spend_out_of_scope", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(naming), "{message} names {naming}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_key_sees_its_own_teams_spend_and_nothing_else() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(spend_config(&mock)).await;
    let org_a = create_org(&app, "org-a", json!({})).await;
    let org_b = create_org(&app, "org-b", json!({})).await;
    let team_a = create_team(&app, &org_a, "team-a", json!({})).await;
    let team_b = create_team(&app, &org_b, "team-b", json!({})).await;
    let (ka, key_a) = create_key(&app, &team_a, "a", json!({})).await;
    let (kb, key_b) = create_key(&app, &team_b, "b", json!({})).await;
    for model in ["cheap", "auto", "dear"] {
        app.chat_as(&ka, model).await;
    }
    for model in ["dear", "dear"] {
        app.chat_as(&kb, model).await;
    }
    app.chat_as(MASTER_KEY, "cheap").await;
    wait_for_requests(&app, 6).await;

    // The master key sees what the admin API shows, total included.
    let path = format!("spend?group_by=team&{ALL_TIME}");
    let (_, admin) = app.get_as(MASTER_KEY, &format!("/admin/{path}")).await;
    let (status, all) = app.get_as(MASTER_KEY, &format!("/v1/{path}")).await;
    assert_eq!(status, 200);
    assert_eq!(all, admin);
    assert_eq!(rows(&all).len(), 3, "teams a and b, and master-key traffic");
    assert_eq!(all["total"]["requests"], 6);
    let team_row = |id: &str| {
        rows(&all)
            .iter()
            .find(|r| r["group"] == id)
            .cloned()
            .unwrap()
    };

    // A team key: its own team's rows only, whatever the grouping.
    let (status, mine) = app.get_as(&ka, &format!("/v1/{path}")).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(rows(&mine), &vec![team_row(&team_a)]);
    let mut own_total = team_row(&team_a);
    own_total["group"] = Value::Null;
    assert_eq!(mine["total"], own_total);
    for by in ["key", "route", "model", "provider", "day", "hour"] {
        let (status, v) = app
            .get_as(&ka, &format!("/v1/spend?group_by={by}&{ALL_TIME}"))
            .await;
        assert_eq!(status, 200, "group_by={by}: {v}");
        assert_eq!(v["total"], own_total, "group_by={by}");
    }
    let (_, by_key) = app
        .get_as(&ka, &format!("/v1/spend?group_by=key&{ALL_TIME}"))
        .await;
    assert_eq!(rows(&by_key).len(), 1);
    assert_eq!(rows(&by_key)[0]["group"], key_a["id"]);
    let (_, by_route) = app
        .get_as(&ka, &format!("/v1/spend?group_by=route&{ALL_TIME}"))
        .await;
    let auto = rows(&by_route)
        .iter()
        .find(|r| r["group"] == "auto")
        .unwrap();
    assert!(
        auto["savings_picousd"].as_i64().unwrap() > 0,
        "the route saves against its reference: {auto}"
    );
    // Its own team and organization may be named; another key's id finds
    // nothing of the other team.
    for q in [format!("team_id={team_a}"), format!("org_id={org_a}")] {
        let (status, v) = app
            .get_as(&ka, &format!("/v1/spend?group_by=team&{q}&{ALL_TIME}"))
            .await;
        assert_eq!(status, 200, "{q}: {v}");
        assert_eq!(v["total"], own_total, "{q}");
    }
    let (_, other_key) = app
        .get_as(
            &ka,
            &format!(
                "/v1/spend?key_id={}&{ALL_TIME}",
                key_b["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(rows(&other_key).len(), 0);
    assert_eq!(other_key["total"]["requests"], 0);

    // Beyond its team: 403, saying why.
    for (q, naming) in [
        (format!("team_id={team_b}"), team_b.as_str()),
        (format!("org_id={org_b}"), org_b.as_str()),
        ("group_by=org".to_owned(), "group by org"),
    ] {
        let (status, v) = app.get_as(&ka, &format!("/v1/spend?{q}")).await;
        assert_out_of_scope(status, &v, naming);
    }
    let (status, v) = app
        .get_as(&kb, &format!("/v1/spend?team_id={team_a}"))
        .await;
    assert_out_of_scope(status, &v, &team_a);

    // CSV: the same rows as the admin report filtered to the team.
    let csv = |key: &str, path: String| {
        let req = app.http.get(app.url(&path)).bearer_auth(key);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
            resp.text().await.unwrap()
        }
    };
    let team_csv = csv(
        &ka,
        format!("/v1/spend?group_by=model&format=csv&{ALL_TIME}"),
    )
    .await;
    let admin_csv = csv(
        MASTER_KEY,
        format!("/admin/spend?group_by=model&format=csv&team_id={team_a}&{ALL_TIME}"),
    )
    .await;
    assert_eq!(team_csv, admin_csv);
    assert_eq!(team_csv.lines().count(), 3, "cheap and dear: {team_csv}");

    // Credentials and parameters are checked as everywhere else.
    let resp = app.http.get(app.url("/v1/spend")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let (status, v) = app.get_as("tg-not-a-key", "/v1/spend").await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["message"], "Incorrect API key provided.");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    for bad in ["group_by=planet", "format=xml", "colour=blue", "team_id="] {
        let (status, v) = app.get_as(&ka, &format!("/v1/spend?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    // A team key still may not use the admin report.
    let (status, _) = app.get_as(&ka, "/admin/spend").await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_view_shows_budgets_with_projections_and_keys() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(spend_config(&mock)).await;
    let monthly = |usd: f64, enforcement: &str| json!({"budget": {"limit_usd": usd, "period": "monthly", "enforcement": enforcement}});
    let org_a = create_org(&app, "acme", monthly(100.0, "soft")).await;
    let org_b = create_org(&app, "globex", json!({})).await;
    let team_a = create_team(&app, &org_a, "search", monthly(1.0, "hard")).await;
    let team_b = create_team(&app, &org_b, "ads", json!({})).await;
    let daily = json!({"budget": {"limit_usd": 0.5, "limit_tokens": 100000, "period": "daily", "enforcement": "hard"}});
    let (k1, key1) = create_key(&app, &team_a, "ci", daily).await;
    let (k2, key2) = create_key(&app, &team_a, "old", json!({})).await;
    let (kb, _) = create_key(&app, &team_b, "b", json!({})).await;
    app.chat_as(&k1, "cheap").await;
    app.chat_as(&k1, "dear").await;
    app.chat_as(&k2, "cheap").await;
    app.chat_as(&kb, "dear").await;
    let (status, _) = app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/keys/{}/revoke", key2["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    wait_for_requests(&app, 4).await;

    let (status, view) = app.get_as(&k1, &format!("/v1/spend/teams/{team_a}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["object"], "team_spend");
    assert_eq!(view["team"]["name"], "search");
    assert_eq!(view["team"]["org_name"], "acme");
    let (_, team_month) = app
        .get_as(
            MASTER_KEY,
            &format!("/admin/spend?team_id={team_a}&{ALL_TIME}"),
        )
        .await;
    assert_eq!(view["spend"]["month"], team_month["total"]);
    assert_eq!(view["spend"]["today"]["requests"], 3);

    let budgets = view["budgets"].as_array().unwrap();
    let levels: Vec<&str> = budgets
        .iter()
        .map(|b| b["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["org", "team", "key"]);
    let team_budget = &budgets[1];
    assert_eq!(team_budget["id"], team_a.as_str());
    assert_eq!(team_budget["name"], "search");
    assert_eq!(team_budget["spent_usd"], team_month["total"]["cost_usd"]);
    assert_eq!(team_budget["reserved_usd"], "0.000000000000");
    let spent = team_month["total"]["cost_picousd"].as_i64().unwrap();
    assert_eq!(
        team_budget["remaining_usd"],
        billing::Picodollars(1_000_000_000_000 - spent).usd()
    );
    let p = &team_budget["projection"];
    assert_eq!(p["basis"], "month_to_date_daily_average");
    assert_eq!(p["month_to_date_usd"], team_month["total"]["cost_usd"]);
    assert!(p["runs_out_at"].is_string(), "{p}");
    assert!(p["before_reset"].is_boolean(), "{p}");
    assert!(team_budget["resets_at"].is_string());
    let key_budget = &budgets[2];
    assert_eq!(key_budget["id"], key1["id"]);
    assert_eq!(key_budget["period"], "daily");
    assert!(key_budget["remaining_tokens"].is_u64(), "{key_budget}");
    assert_eq!(budgets[0]["name"], "acme");

    let keys = view["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], key1["id"]);
    assert_eq!(keys[0]["prefix"], key1["prefix"]);
    assert_eq!(keys[0]["revoked_at"], Value::Null);
    assert_eq!(keys[1]["name"], "old");
    assert!(keys[1]["revoked_at"].is_string());
    let text = view.to_string();
    assert!(!text.contains(&k1) && !text.contains(&k2), "no secrets");

    // Another team is refused to a team key, shown to the master key.
    let (status, v) = app.get_as(&k1, &format!("/v1/spend/teams/{team_b}")).await;
    assert_out_of_scope(status, &v, &team_b);
    let (status, v) = app.get_as(&k1, "/v1/spend/teams/no-such-team").await;
    assert_out_of_scope(status, &v, "no-such-team");
    let (status, v) = app
        .get_as(MASTER_KEY, &format!("/v1/spend/teams/{team_b}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["team"]["name"], "ads");
    assert_eq!(v["budgets"], json!([]));
    let (status, _) = app.get_as(MASTER_KEY, "/v1/spend/teams/no-such-team").await;
    assert_eq!(status, 404);

    // The teams a caller may pick from.
    let (_, mine) = app.get_as(&k1, "/v1/spend/teams").await;
    assert_eq!(
        mine["data"],
        json!([{"id": team_a, "name": "search", "org_id": org_a, "org_name": "acme"}])
    );
    let (_, all) = app.get_as(MASTER_KEY, "/v1/spend/teams").await;
    let names: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"search") && names.contains(&"ads"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spend_page_is_served_from_the_binary_with_strict_headers() {
    let app = spawn_app(config("")).await;
    let get = |path: &str, etag: Option<&str>| {
        let mut req = app.http.get(app.url(path));
        if let Some(e) = etag {
            req = req.header("if-none-match", e);
        }
        async move { req.send().await.unwrap() }
    };
    let assert_secure = |resp: &reqwest::Response, path: &str| {
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert_eq!(csp, gateway::http::CONTENT_SECURITY_POLICY, "{path}");
        assert!(csp.starts_with("default-src 'self';"), "{path}");
        assert!(
            !csp.contains("unsafe"),
            "{path}: no unsafe-inline or unsafe-eval"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h.contains_key("cache-control"), "{path}");
    };

    // No credentials needed: the files hold no data.
    for path in ["/ui", "/ui/"] {
        let page = get(path, None).await;
        assert_eq!(page.status(), 200, "{path}");
        assert_secure(&page, path);
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(page.headers()["cache-control"], "no-cache");
        let html = page.text().await.unwrap();
        assert!(html.contains("<script type=\"module\" src=\"/ui/app.js\"></script>"));
        assert!(!html.contains("style=\""), "no inline styles");
    }
    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("format.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let path = format!("/ui/{file}");
        let resp = get(&path, None).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_secure(&resp, &path);
        assert_eq!(resp.headers()["content-type"], kind, "{path}");
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        let on_disk = std::fs::read(format!("{}/ui/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(
            resp.bytes().await.unwrap(),
            on_disk,
            "{path} is the file as built"
        );
        // Revalidated by its ETag: unchanged, no body.
        let again = get(&path, Some(&etag)).await;
        assert_eq!(again.status(), 304, "{path}");
        assert_secure(&again, &path);
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // Unknown files and other methods: refused, with the same headers.
    let missing = get("/ui/secrets.js", None).await;
    assert_eq!(missing.status(), 404);
    assert_secure(&missing, "/ui/secrets.js");
    let nested = get("/ui/a/b.js", None).await;
    assert_eq!(nested.status(), 404);
    assert_secure(&nested, "/ui/a/b.js");
    let post = app.http.post(app.url("/ui")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_secure(&post, "POST /ui");
    // The API the page calls still needs a key.
    let resp = app
        .http
        .get(app.url("/v1/spend/teams"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
