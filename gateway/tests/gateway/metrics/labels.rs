//! Org, team and key labels: names from tenancy, `master` for the master
//! key, the key label only when opted in; reference cost; refusals.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;

fn requests(m: &str, org: &str, team: &str, key: Option<&str>) -> Option<f64> {
    let mut labels = vec![
        ("endpoint", "chat_completions"),
        ("model", "m"),
        ("provider", "up"),
        ("status", "200"),
        ("org", org),
        ("team", team),
    ];
    labels.extend(key.map(|k| ("key", k)));
    value(m, "tollgate_requests_total", &labels)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_team_metrics_carry_org_and_team_names_and_the_master_key_is_master() {
    let (_mock, app) = tenants_app("").await;
    let (acme, search_id, search, _) = tenant(&app, ("acme", "search"), json!({}), json!({})).await;
    let (_, ads_id, ads, _) = tenant(&app, ("acme", "ads"), json!({}), json!({})).await;
    // The same team name in another organization is another team.
    let (globex, globex_search_id, globex_search, _) =
        tenant(&app, ("globex", "search"), json!({}), json!({})).await;
    let (_, broke_id, broke, _) = tenant(&app, ("globex", "broke"), no_budget(), json!({})).await;
    for (key, n) in [(&search, 1), (&ads, 2), (&globex_search, 1)] {
        for _ in 0..n {
            assert_eq!(chat_as(&app, key, "m").await, 200);
        }
    }
    assert_eq!(chat_as(&app, MASTER_KEY, "m").await, 200);
    assert_eq!(chat_as(&app, &broke, "m").await, 429);

    let m = app.metrics().await;
    assert_eq!(requests(&m, "acme", "search", None), Some(1.0), "{m}");
    assert_eq!(requests(&m, "acme", "ads", None), Some(2.0));
    assert_eq!(requests(&m, "globex", "search", None), Some(1.0));
    assert_eq!(requests(&m, "master", "master", None), Some(1.0));
    let output = |org, team| {
        let labels = [
            ("model", "m"),
            ("provider", "up"),
            ("kind", "output"),
            ("org", org),
            ("team", team),
        ];
        value(&m, "tollgate_tokens_total", &labels)
    };
    assert_eq!(output("acme", "ads"), Some(16.0));
    assert_eq!(output("master", "master"), Some(8.0));
    let cost = |org, team| {
        let labels = [
            ("model", "m"),
            ("provider", "up"),
            ("org", org),
            ("team", team),
        ];
        value(&m, "tollgate_cost_usd_total", &labels).unwrap_or(0.0)
    };
    assert!(cost("acme", "search") > 0.0);
    assert_eq!(cost("acme", "ads"), 2.0 * cost("acme", "search"));
    let refused = [
        ("reason", "budget"),
        ("level", "team"),
        ("org", "globex"),
        ("team", "broke"),
    ];
    assert_eq!(
        value(&m, "tollgate_quota_rejections_total", &refused),
        Some(1.0)
    );
    assert!(
        !m.lines().any(|l| l.contains("key=\"")),
        "no key label unless opted in: {m}"
    );

    // One info series per team whose keys were used, joining names to ids.
    let info: BTreeSet<_> = matching(&m, "tollgate_team_info", &[])
        .into_iter()
        .map(|s| {
            assert_eq!(s.value, 1.0);
            let l = |k: &str| s.labels[k].clone();
            (l("org"), l("team"), l("org_id"), l("team_id"))
        })
        .collect();
    let s = |v: &str| v.to_owned();
    let expected: BTreeSet<_> = [
        (s("acme"), s("ads"), acme.clone(), ads_id),
        (s("acme"), s("search"), acme, search_id),
        (s("globex"), s("broke"), globex.clone(), broke_id),
        (s("globex"), s("search"), globex, globex_search_id),
    ]
    .into_iter()
    .collect();
    assert_eq!(info, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_cost_is_priced_at_the_routes_reference_model_or_equals_the_cost() {
    let (_mock, app) = tenants_app("").await;
    // The same request, through the route and to the model itself.
    assert_eq!(chat_as(&app, MASTER_KEY, "auto").await, 200);
    assert_eq!(chat_as(&app, MASTER_KEY, "m").await, 200);
    let m = app.metrics().await;
    let master = [("org", "master"), ("team", "master")];
    let cost = sum(&m, "tollgate_cost_usd_total", &master) / 2.0;
    assert!(cost > 0.0, "{m}");
    let reference = |route| {
        let labels = [("route", route), master[0], master[1]];
        value(&m, "tollgate_reference_cost_usd_total", &labels).unwrap()
    };
    assert!(
        close(reference("auto"), 10.0 * cost),
        "{} at the reference model, ten times {cost}",
        reference("auto")
    );
    assert!(close(reference("m"), cost), "no reference: the cost itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_labels_are_opt_in_and_name_the_key_or_its_display_prefix() {
    let (_mock, app) = tenants_app("[metrics]\nper_key = true\n").await;
    let named = json!({"name": "ci-bot"});
    let (_, _, bot, _) = tenant(&app, ("acme", "search"), json!({}), named).await;
    let (_, _, anon, view) = tenant(&app, ("acme", "ads"), json!({}), json!({})).await;
    let prefix = view["prefix"].as_str().unwrap().to_owned();
    assert!(anon.starts_with(&prefix) && prefix.len() < anon.len());
    let broke_key = json!({"name": "broke-bot"});
    let (_, _, broke, _) = tenant(&app, ("acme", "broke"), no_budget(), broke_key).await;
    assert_eq!(chat_as(&app, &bot, "auto").await, 200);
    assert_eq!(chat_as(&app, &anon, "m").await, 200);
    assert_eq!(chat_as(&app, MASTER_KEY, "m").await, 200);
    assert_eq!(chat_as(&app, &broke, "m").await, 429);

    let m = app.metrics().await;
    assert_eq!(
        requests(&m, "acme", "search", Some("ci-bot")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(requests(&m, "acme", "ads", Some(&prefix)), Some(1.0));
    assert_eq!(requests(&m, "master", "master", Some("master")), Some(1.0));
    for name in [
        "tollgate_tokens_total",
        "tollgate_cost_usd_total",
        "tollgate_reference_cost_usd_total",
    ] {
        let by_bot = matching(&m, name, &[("team", "search"), ("key", "ci-bot")]);
        assert!(!by_bot.is_empty(), "{name} by key: {m}");
    }
    let refused = [
        ("reason", "budget"),
        ("level", "team"),
        ("org", "acme"),
        ("team", "broke"),
        ("key", "broke-bot"),
    ];
    assert_eq!(
        value(&m, "tollgate_quota_rejections_total", &refused),
        Some(1.0)
    );
    assert!(!m.contains(&anon), "never the secret");
}
