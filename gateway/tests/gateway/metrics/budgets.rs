//! Budget gauges by name: each team's and organization's limit, spend,
//! holds and what is left, when its period resets, and renames followed.

use billing::quota::Period;
use serde_json::json;

use super::*;

fn budget(m: &str, unit: &str, (level, org, team): (&str, &str, &str), kind: &str) -> Option<f64> {
    let labels = [
        ("level", level),
        ("org", org),
        ("team", team),
        ("kind", kind),
    ];
    value(m, &format!("tollgate_budget_{unit}"), &labels)
}

fn reset_at(m: &str, (level, org, team): (&str, &str, &str)) -> Option<f64> {
    let labels = [("level", level), ("org", org), ("team", team)];
    value(m, "tollgate_budget_reset_timestamp_seconds", &labels)
}

/// When `period`'s window around now ends, in unix seconds: either side of
/// a boundary the test may straddle.
fn period_ends(period: Period, before: i64, after: i64) -> [f64; 2] {
    [before, after].map(|now| period.window(now).1 as f64 / 1000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_gauges_carry_names_and_when_each_budget_resets() {
    let (_mock, mut app) = tenants_app("").await;
    let org_budget = json!({"limit_usd": 100.0, "period": "daily", "enforcement": "soft"});
    let (status, org) = app
        .admin(
            reqwest::Method::POST,
            "/admin/orgs",
            json!({"name": "acme", "budget": org_budget}),
        )
        .await;
    assert_eq!(status, 201, "{org}");
    let search_budget = json!({"budget": {"limit_usd": 5.0, "limit_tokens": 100000,
                                          "period": "monthly", "enforcement": "hard"}});
    let (_, search_id, search, _) =
        tenant(&app, ("acme", "search"), search_budget, json!({})).await;
    let ads_budget =
        json!({"budget": {"limit_usd": 1.0, "period": "lifetime", "enforcement": "soft"}});
    let (_, _, ads, _) = tenant(&app, ("acme", "ads"), ads_budget, json!({})).await;

    let before = billing::db::now_ms();
    assert_eq!(chat_as(&app, &search, "m").await, 200);
    let by_search = app.next_record().await;
    assert_eq!(chat_as(&app, &ads, "m").await, 200);
    let by_ads = app.next_record().await;
    let m = app.metrics().await;
    let after = billing::db::now_ms();

    let search_team = ("team", "acme", "search");
    let spent = by_search.cost.usd_f64();
    assert_eq!(budget(&m, "usd", search_team, "limit"), Some(5.0), "{m}");
    assert_eq!(budget(&m, "usd", search_team, "spent"), Some(spent));
    assert_eq!(budget(&m, "usd", search_team, "reserved"), Some(0.0));
    assert_eq!(
        budget(&m, "usd", search_team, "remaining"),
        Some(5.0 - spent)
    );
    let tokens = by_search.usage.total() as f64;
    assert_eq!(budget(&m, "tokens", search_team, "limit"), Some(100000.0));
    assert_eq!(budget(&m, "tokens", search_team, "spent"), Some(tokens));
    assert_eq!(
        budget(&m, "tokens", search_team, "remaining"),
        Some(100000.0 - tokens)
    );
    // The organization's budget has no team, and counts both teams.
    let acme = ("organization", "acme", "");
    assert_eq!(budget(&m, "usd", acme, "limit"), Some(100.0));
    let both = spent + by_ads.cost.usd_f64();
    let org_spent = budget(&m, "usd", acme, "spent").unwrap();
    assert!((org_spent - both).abs() < 1e-12, "{org_spent} != {both}");
    assert_eq!(budget(&m, "tokens", acme, "limit"), None, "no token limit");
    let all = matching(&m, "tollgate_budget_usd", &[]);
    assert!(
        all.iter().all(|s| !s.labels.contains_key("id")),
        "budgets are labelled by name, not id: {all:?}"
    );

    // Resets: monthly and daily budgets say when; a lifetime one never does.
    let at = reset_at(&m, search_team).unwrap();
    assert!(
        period_ends(Period::Monthly, before, after).contains(&at),
        "{at}"
    );
    let at = reset_at(&m, acme).unwrap();
    assert!(
        period_ends(Period::Daily, before, after).contains(&at),
        "{at}"
    );
    let ads_team = ("team", "acme", "ads");
    assert_eq!(budget(&m, "usd", ads_team, "limit"), Some(1.0));
    assert_eq!(reset_at(&m, ads_team), None);

    // A renamed team is relabelled: the key watcher reloads its key.
    let (status, t) = app
        .admin(
            reqwest::Method::PATCH,
            &format!("/admin/teams/{search_id}"),
            json!({"name": "discovery"}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let renamed = ("team", "acme", "discovery");
    eventually("the budget follows the team's new name", async || {
        let m = app.metrics().await;
        budget(&m, "usd", renamed, "limit") == Some(5.0)
            && budget(&m, "usd", search_team, "limit").is_none()
            && value(
                &m,
                "tollgate_team_info",
                &[
                    ("org", "acme"),
                    ("team", "discovery"),
                    ("org_id", org["id"].as_str().unwrap()),
                    ("team_id", &search_id),
                ],
            ) == Some(1.0)
            && matching(&m, "tollgate_team_info", &[("team", "search")]).is_empty()
    })
    .await;
}
