//! `/metrics` per team, end to end.
//!
//! - `labels.rs`: org, team and (opted in) key labels; the master key's
//!   `master`; reference cost; refusals by team.
//! - `budgets.rs`: budget gauges by name, when they reset, team info, renames.
//! - `timing.rs`: gateway overhead, time per output token, open streams.
//! - `promtool.rs`: `promtool check metrics` after mixed traffic.
//! - `access.rs`: `/metrics` open, or behind `[metrics] token`.

mod access;
mod budgets;
mod labels;
mod promtool;
mod timing;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::helpers::*;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Reads `name{a="x",b="y"} value` (label values may escape `"` and `\`).
fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}')?.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut val = String::new();
        loop {
            match chars.next()? {
                '\\' => val.push(match chars.next()? {
                    'n' => '\n',
                    c => c,
                }),
                '"' => break,
                c => val.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), val);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Every sample in `text`.
pub(crate) fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample: {l}")))
        .collect()
}

/// The samples of `name` whose labels include every pair of `labels`.
pub(crate) fn matching(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    samples(text)
        .into_iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `labels` (0 when none).
pub(crate) fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(text, name, labels).iter().map(|s| s.value).sum()
}

/// The one sample of `name` with exactly `labels`, if any.
pub(crate) fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    matching(text, name, labels)
        .into_iter()
        .find(|s| s.labels.len() == labels.len())
        .map(|s| s.value)
}

/// Model `m` ($1 in, $2 out per Mtok) and `big` (ten times dearer) on one
/// fast mock; route `auto` serves `m` and is priced against `big`. `extra`
/// is appended to the config (whole tables).
pub(crate) async fn tenants_app(extra: &str) -> (loadtest::mock::MockHandle, TestApp) {
    let mock = spawn_fast_mock().await;
    let cfg = config(&format!(
        "[billing]\nkey_refresh_interval = \"100ms\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m]\nprovider = \"up\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n\
         [models.big]\nprovider = \"up\"\ninput_per_mtok = 10.0\noutput_per_mtok = 20.0\n\
         [routes.auto]\ncandidates = [\"m\"]\nreference_model = \"big\"\n{extra}",
        mock.base_url()
    ));
    (mock, spawn_app(cfg).await)
}

/// A hard budget nothing fits in.
pub(crate) fn no_budget() -> Value {
    json!({"budget": {"limit_usd": 0.0, "period": "monthly", "enforcement": "hard"}})
}

/// An organization named `org` (made on first use) with a team named `team`
/// (with `team_extra` settings) and a key in it (with `key_extra`):
/// (org id, team id, key secret, key view).
pub(crate) async fn tenant(
    app: &TestApp,
    (org, team): (&str, &str),
    team_extra: Value,
    key_extra: Value,
) -> (String, String, String, Value) {
    let (_, orgs) = app
        .admin(reqwest::Method::GET, "/admin/orgs", Value::Null)
        .await;
    let existing = orgs["data"]
        .as_array()
        .and_then(|all| all.iter().find(|o| o["name"] == org).cloned());
    let org_id = match existing {
        Some(o) => o["id"].as_str().unwrap().to_owned(),
        None => {
            let (status, o) = app
                .admin(reqwest::Method::POST, "/admin/orgs", json!({"name": org}))
                .await;
            assert_eq!(status, 201, "{o}");
            o["id"].as_str().unwrap().to_owned()
        }
    };
    let mut body = json!({"org_id": org_id, "name": team});
    body.as_object_mut()
        .unwrap()
        .extend(team_extra.as_object().cloned().unwrap_or_default());
    let (status, t) = app.admin(reqwest::Method::POST, "/admin/teams", body).await;
    assert_eq!(status, 201, "{t}");
    let team_id = t["id"].as_str().unwrap().to_owned();
    let mut body = json!({"team_id": team_id});
    body.as_object_mut()
        .unwrap()
        .extend(key_extra.as_object().cloned().unwrap_or_default());
    let (status, k) = app.admin(reqwest::Method::POST, "/admin/keys", body).await;
    assert_eq!(status, 201, "{k}");
    let secret = k["key"].as_str().unwrap().to_owned();
    (org_id, team_id, secret, k)
}

/// A chat request for `model` with `key`; its status.
pub(crate) async fn chat_as(app: &TestApp, key: &str, model: &str) -> u16 {
    app.http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn samples_are_read_with_their_labels_escapes_included() {
    let s = parse_sample(r#"x_total{a="1",b="say \"hi\", ok",c=""} 2.5"#).unwrap();
    assert_eq!(s.name, "x_total");
    assert_eq!(s.labels["b"], r#"say "hi", ok"#);
    assert_eq!(s.labels["c"], "");
    assert_eq!(s.value, 2.5);
    assert_eq!(parse_sample("up 1").unwrap().labels.len(), 0);
}
