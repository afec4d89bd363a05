//! Reports agree with the raw rows, for every grouping and for ranges that
//! do and do not fall on hour boundaries.

use std::collections::BTreeMap;

use billing::ledger::{insert_batch, LedgerRow};
use billing::reports::{spend, GroupBy, SpendFilter};
use billing::tenancy::rfc3339;
use billing::testing::TestDb;

use crate::helpers::row;

const HOUR: i64 = 3_600_000;

fn group_of(r: &LedgerRow, by: GroupBy) -> Option<String> {
    let opt = |s: &Option<String>| s.clone();
    match by {
        GroupBy::Org => opt(&r.org_id),
        GroupBy::Team => opt(&r.team_id),
        GroupBy::Key => opt(&r.key_id),
        GroupBy::Route => Some(r.route().to_owned()),
        GroupBy::Model => Some(r.requested_model.clone()),
        GroupBy::Provider => Some(r.provider.clone()),
        GroupBy::Day => Some(rfc3339(r.started_at_ms.div_euclid(24 * HOUR) * 24 * HOUR)),
        GroupBy::Hour => Some(rfc3339(r.hour_ms())),
    }
}

async fn reports_agree(t: &TestDb) {
    // 600 rows over three days, three keys plus master-key traffic.
    let base = 1_795_000_000_000 / (24 * HOUR) * (24 * HOUR);
    let keys = [
        Some(("o1", "t1", "k1")),
        Some(("o1", "t2", "k2")),
        Some(("o2", "t3", "k3")),
        None,
    ];
    let rows: Vec<LedgerRow> = (0..600u64)
        .map(|i| {
            let at = base + (i as i64 * 7_777_777) % (72 * HOUR);
            let model = ["kimi-k2.5", "glm-5", "deepseek-v4-pro"][i as usize % 3];
            let provider = ["kimi", "glm"][i as usize % 2];
            let mut r = row(i, at, keys[i as usize % 4], model, provider);
            // Two routes, one with a reference model; the rest plain models.
            match i % 5 {
                0 | 1 => {
                    r.route = "auto".into();
                    r.reference_model = Some("claude-sonnet-4.5".into());
                    r.reference_cost_picousd = Some(r.cost_picousd * 30 + i as i64);
                }
                2 => r.route = "coder".into(),
                _ => {}
            }
            r
        })
        .collect();
    for chunk in rows.chunks(100) {
        insert_batch(&t.db, chunk).await.unwrap();
    }
    let ranges = [
        (base, base + 72 * HOUR),
        (base + 1_234_567, base + 50 * HOUR + 999),
        (base + 10 * HOUR + 5, base + 10 * HOUR + 3_000_000),
    ];
    let filters: [(Option<&str>, Option<&str>, Option<&str>); 4] = [
        (None, None, None),
        (Some("o1"), None, None),
        (None, Some("glm-5"), None),
        (None, None, Some("auto")),
    ];
    for by in [
        GroupBy::Org,
        GroupBy::Team,
        GroupBy::Key,
        GroupBy::Route,
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::Day,
        GroupBy::Hour,
    ] {
        for (from, to) in ranges {
            for (org, model, route) in filters {
                let f = SpendFilter {
                    from_ms: from,
                    to_ms: to,
                    org_id: org.map(str::to_owned),
                    model: model.map(str::to_owned),
                    route: route.map(str::to_owned),
                    ..Default::default()
                };
                type Sums = (i64, i64, i64, i64, i64);
                let mut want: BTreeMap<Option<String>, Sums> = BTreeMap::new();
                for r in rows.iter().filter(|r| {
                    r.started_at_ms >= from
                        && r.started_at_ms < to
                        && org.is_none_or(|o| r.org_id.as_deref() == Some(o))
                        && model.is_none_or(|m| r.requested_model == m)
                        && route.is_none_or(|m| r.route() == m)
                }) {
                    let e = want.entry(group_of(r, by)).or_default();
                    e.0 += 1;
                    e.1 += r.usage.input as i64 + r.usage.cached_input as i64;
                    e.2 += r.cost_picousd;
                    // Rows without a reference cost what they cost.
                    let reference = r.reference_cost_picousd.unwrap_or(r.cost_picousd);
                    e.3 += reference;
                    e.4 += reference - r.cost_picousd;
                }
                let got = spend(&t.db, by, &f).await.unwrap();
                for r in &got {
                    assert_eq!(
                        r.savings_usd,
                        billing::Picodollars(r.savings_picousd).usd(),
                        "savings in dollars match picodollars"
                    );
                }
                let got: BTreeMap<Option<String>, Sums> = got
                    .into_iter()
                    .map(|r| {
                        (
                            r.group,
                            (
                                r.requests,
                                r.input_tokens + r.cached_input_tokens,
                                r.cost_picousd,
                                r.reference_cost_picousd,
                                r.savings_picousd,
                            ),
                        )
                    })
                    .collect();
                assert_eq!(
                    got, want,
                    "{by:?} {from}..{to} org={org:?} model={model:?} route={route:?}"
                );
            }
        }
    }
}
both_backends!(reports_agree_with_the_raw_rows, super::reports_agree);

/// Sessions: grouped from the rows, with first and last seen, filtered like
/// every report, most recent first, limited; rows without one left out.
async fn sessions_agree(t: &TestDb) {
    use billing::reports::{sessions, sessions_total};
    let base = 1_795_000_000_000 / HOUR * HOUR + 17;
    let keys = [Some(("o1", "t1", "k1")), Some(("o1", "t2", "k2")), None];
    let rows: Vec<LedgerRow> = (0..90u64)
        .map(|i| {
            // Spread over hours, so whole hours of the rollup lie inside.
            let at = base + i as i64 * 1_234_567;
            let mut r = row(i, at, keys[i as usize % 3], "kimi-k2.5", "kimi");
            r.session = match i % 4 {
                3 => None,
                s => Some(format!("task-{s}")),
            };
            if i % 5 == 0 {
                r.reference_cost_picousd = Some(r.cost_picousd * 3);
            }
            r
        })
        .collect();
    insert_batch(&t.db, &rows).await.unwrap();
    let end = base + 90 * 1_234_567;
    for (from, to, team) in [
        (base, end, None),
        (base + 5 * HOUR + 11, base + 20 * HOUR + 7, None),
        (base, end, Some("t2")),
    ] {
        let f = SpendFilter {
            from_ms: from,
            to_ms: to,
            team_id: team.map(str::to_owned),
            ..Default::default()
        };
        let got = sessions(&t.db, &f, 100).await.unwrap();
        let mut want: BTreeMap<String, Vec<&LedgerRow>> = BTreeMap::new();
        for r in rows.iter().filter(|r| {
            r.started_at_ms >= from
                && r.started_at_ms < to
                && (team.is_none() || r.team_id.as_deref() == team)
        }) {
            if let Some(s) = &r.session {
                want.entry(s.clone()).or_default().push(r);
            }
        }
        assert_eq!(got.len(), want.len(), "{from}..{to} {team:?}");
        for g in &got {
            let mine = &want[g.spend.group.as_deref().unwrap()];
            let first = mine.iter().map(|r| r.started_at_ms).min().unwrap();
            let last = mine.iter().map(|r| r.started_at_ms).max().unwrap();
            assert_eq!(g.first_seen.as_deref(), Some(&*rfc3339(first)));
            assert_eq!(g.last_seen.as_deref(), Some(&*rfc3339(last)));
            assert_eq!(g.spend.requests, mine.len() as i64);
            let sum = |f: fn(&LedgerRow) -> i64| mine.iter().map(|r| f(r)).sum::<i64>();
            assert_eq!(g.spend.input_tokens, sum(|r| r.usage.input as i64));
            assert_eq!(
                g.spend.cached_input_tokens,
                sum(|r| r.usage.cached_input as i64)
            );
            assert_eq!(
                g.spend.cache_write_tokens,
                sum(|r| r.usage.cache_write as i64)
            );
            assert_eq!(g.spend.output_tokens, sum(|r| r.usage.output as i64));
            assert_eq!(g.spend.cost_picousd, sum(|r| r.cost_picousd));
            assert_eq!(
                g.spend.reference_cost_picousd,
                sum(|r| r.reference_cost().0)
            );
        }
        let lasts: Vec<_> = got.iter().map(|g| g.last_seen.clone()).collect();
        assert!(lasts.windows(2).all(|w| w[0] >= w[1]), "most recent first");
        let total = sessions_total(&got);
        assert_eq!(
            total.spend.requests,
            want.values().map(|v| v.len() as i64).sum::<i64>()
        );
    }
    let f = SpendFilter {
        from_ms: base,
        to_ms: end,
        ..Default::default()
    };
    let one = sessions(&t.db, &f, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0].spend.group.as_deref(),
        Some("task-1"),
        "row 89 is the last"
    );
}

both_backends!(sessions_agree_with_the_raw_rows, super::sessions_agree);
