use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::catalog::{Capabilities, ModelEntry};
use crate::price::{Price, Rates};
use crate::provider::{MockProvider, Provider, Timeouts};
use crate::sim::SimConfig;

fn model(name: &str, input: u64, output: u64, context: u64, caps: Capabilities) -> Arc<ModelEntry> {
    Arc::new(ModelEntry {
        name: name.into(),
        provider: Arc::new(Provider::Mock(MockProvider::new(
            name,
            SimConfig::default(),
            Timeouts::default(),
        ))),
        upstream_model: name.into(),
        max_output_tokens: 8192,
        context_window: context,
        capabilities: caps,
        health: Health::default(),
        price: Some(Price::flat(Rates {
            input,
            cached_input: input / 10,
            cache_write: input,
            output,
        })),
    })
}

fn all() -> Capabilities {
    Capabilities::parse(Capabilities::NAMES).unwrap()
}

fn route(strategy: Strategy, candidates: Vec<Arc<ModelEntry>>) -> Route {
    Route {
        name: "auto".into(),
        candidates,
        strategy,
        max_attempts: 3,
        max_time: Duration::from_secs(60),
        reference: None,
        filter: true,
        low_budget: None,
        affinity: true,
    }
}

fn names(plan: &[Arc<ModelEntry>]) -> Vec<&str> {
    plan.iter().map(|m| m.name.as_str()).collect()
}

fn default_price() -> Price {
    Price::flat(Rates {
        input: 3_000_000,
        cached_input: 300_000,
        cache_write: 3_750_000,
        output: 15_000_000,
    })
}

fn needs(prompt: u64) -> Needs {
    Needs {
        prompt_tokens: prompt,
        ..Needs::default()
    }
}

#[test]
fn cheapest_ranks_by_this_requests_expected_cost() {
    // Cheap input, dear output against the opposite: a long prompt with a
    // short answer favours cheap input, a short prompt with a long answer
    // favours cheap output.
    let cheap_in = model("cheap-in", 100_000, 10_000_000, 200_000, all());
    let cheap_out = model("cheap-out", 2_000_000, 1_000_000, 200_000, all());
    let r = route(
        Strategy::Cheapest,
        vec![cheap_out.clone(), cheap_in.clone()],
    );
    let now = Instant::now();
    let long_prompt = Needs {
        prompt_tokens: 100_000,
        max_output: Some(100),
        ..Needs::default()
    };
    assert_eq!(
        names(&r.plan(&long_prompt, &default_price(), now).unwrap()),
        ["cheap-in", "cheap-out"]
    );
    let long_answer = Needs {
        prompt_tokens: 100,
        max_output: Some(4000),
        ..Needs::default()
    };
    assert_eq!(
        names(&r.plan(&long_answer, &default_price(), now).unwrap()),
        ["cheap-out", "cheap-in"]
    );
}

#[test]
fn cheapest_counts_the_observed_cache_share() {
    let a = model("a", 1_000_000, 1_000_000, 200_000, all());
    let b = model("b", 900_000, 1_000_000, 200_000, all());
    // a serves most of its prompts from cache (a tenth of the price).
    for _ in 0..20 {
        a.health.success(Duration::from_millis(1), Some(0.9));
    }
    let r = route(Strategy::Cheapest, vec![b, a]);
    let plan = r
        .plan(&needs(50_000), &default_price(), Instant::now())
        .unwrap();
    assert_eq!(names(&plan)[0], "a");
}

#[test]
fn fastest_prefers_untried_then_the_lowest_moving_average() {
    let slow = model("slow", 1, 1, 200_000, all());
    let quick = model("quick", 1, 1, 200_000, all());
    let fresh = model("fresh", 1, 1, 200_000, all());
    slow.health.success(Duration::from_millis(800), None);
    quick.health.success(Duration::from_millis(40), None);
    let r = route(Strategy::Fastest, vec![slow, quick, fresh]);
    let plan = r
        .plan(&needs(10), &default_price(), Instant::now())
        .unwrap();
    assert_eq!(names(&plan), ["fresh", "quick", "slow"]);
}

#[test]
fn weighted_choice_follows_the_weights() {
    let a = model("a", 1, 1, 200_000, all());
    let b = model("b", 1, 1, 200_000, all());
    let r = route(Strategy::Weighted(vec![1, 3]), vec![a, b]);
    let now = Instant::now();
    let n = 20_000;
    let firsts = (0..n)
        .filter(|_| r.plan(&needs(10), &default_price(), now).unwrap()[0].name == "b")
        .count();
    let share = firsts as f64 / n as f64;
    assert!(
        (share - 0.75).abs() < 0.02,
        "b first in {share} of plans, expected 0.75"
    );
    // The other candidate is still there, as the fallback.
    assert_eq!(r.plan(&needs(10), &default_price(), now).unwrap().len(), 2);
}

#[test]
fn capabilities_and_context_exclude_candidates_with_reasons() {
    let plain = model("plain", 1, 1, 8_000, Capabilities::default());
    let vision = model(
        "vision",
        2,
        2,
        200_000,
        Capabilities::parse(["vision", "tools"]).unwrap(),
    );
    let r = route(Strategy::Ordered, vec![plain.clone(), vision.clone()]);
    let now = Instant::now();
    let p = default_price();
    let tools = Needs {
        tools: true,
        ..needs(10)
    };
    assert_eq!(names(&r.plan(&tools, &p, now).unwrap()), ["vision"]);
    let images = Needs {
        vision: true,
        ..needs(10)
    };
    assert_eq!(names(&r.plan(&images, &p, now).unwrap()), ["vision"]);
    let long = Needs {
        max_output: Some(1000),
        ..needs(7_500)
    };
    assert_eq!(names(&r.plan(&long, &p, now).unwrap()), ["vision"]);
    let schema = Needs {
        json_schema: true,
        ..needs(10)
    };
    let err = r.plan(&schema, &p, now).unwrap_err();
    assert!(err.reasons.contains("'plain' lacks json_schema"), "{err}");
    assert!(err.reasons.contains("'vision' lacks json_schema"), "{err}");
    let huge = needs(500_000);
    let err = r.plan(&huge, &p, now).unwrap_err();
    assert!(
        err.to_string()
            .contains("'plain' has a 8000-token context window"),
        "{err}"
    );
    // A plain model name is not filtered: the client chose it.
    let single = Route::single(plain);
    assert_eq!(names(&single.plan(&huge, &p, now).unwrap()), ["plain"]);
}

#[test]
fn unhealthy_candidates_go_last_and_attempts_are_capped() {
    let a = model("a", 1, 1, 200_000, all());
    let b = model("b", 1, 1, 200_000, all());
    let c = model("c", 1, 1, 200_000, all());
    let now = Instant::now();
    for _ in 0..3 {
        a.health.failure(now);
    }
    let mut r = route(Strategy::Ordered, vec![a, b, c]);
    assert_eq!(
        names(&r.plan(&needs(1), &default_price(), now).unwrap()),
        ["b", "c", "a"]
    );
    r.max_attempts = 2;
    assert_eq!(
        names(&r.plan(&needs(1), &default_price(), now).unwrap()),
        ["b", "c"]
    );
}

#[test]
fn retained_candidates_keep_their_weights_and_shared_health() {
    let a = model("a", 1, 1, 100_000, all());
    let b = model("b", 1, 1, 100_000, all());
    let c = model("c", 1, 1, 100_000, all());
    let r = route(
        Strategy::Weighted(vec![1, 0, 5]),
        vec![a.clone(), b.clone(), c.clone()],
    );
    let kept = r.retain(|m| m.name != "a");
    assert_eq!(names(&kept.candidates), ["b", "c"]);
    assert_eq!(kept.strategy, Strategy::Weighted(vec![0, 5]));
    // b weighs nothing: c always comes first.
    for _ in 0..50 {
        let plan = kept
            .plan(&needs(10), &default_price(), Instant::now())
            .unwrap();
        assert_eq!(names(&plan), ["c", "b"]);
    }
    assert!(Arc::ptr_eq(&kept.candidates[1], &c));
    assert!(r.retain(|_| false).candidates.is_empty());
}

fn sticky(model: &str, cache_share: f64) -> Sticky {
    Sticky {
        model: model.into(),
        cache_share,
    }
}

#[test]
fn a_session_keeps_its_candidate_where_the_strategy_would_move_it() {
    let a = model("a", 1, 1, 200_000, all());
    let b = model("b", 1, 1, 200_000, all());
    // b weighs nothing: the strategy alone always puts a first.
    let r = route(Strategy::Weighted(vec![1, 0]), vec![a, b]);
    let now = Instant::now();
    let s = sticky("b", 0.9);
    for _ in 0..50 {
        let plan = r
            .plan_for(&needs(10), &default_price(), now, Some(&s))
            .unwrap();
        assert_eq!(names(&plan), ["b", "a"], "b first, a its fallback");
    }
    // Off, the strategy decides.
    let off = Route {
        affinity: false,
        ..r.retain(|_| true)
    };
    let plan = off
        .plan_for(&needs(10), &default_price(), now, Some(&s))
        .unwrap();
    assert_eq!(names(&plan), ["a", "b"]);
}

#[test]
fn an_unhealthy_or_unable_sticky_candidate_lets_the_session_move() {
    let a = model("a", 1, 1, 200_000, all());
    let plain = model("plain", 1, 1, 200_000, Capabilities::default());
    let r = route(Strategy::Fastest, vec![a.clone(), plain.clone()]);
    let now = Instant::now();
    let s = sticky("plain", 0.5);
    let p = default_price();
    assert_eq!(
        names(&r.plan_for(&needs(10), &p, now, Some(&s)).unwrap())[0],
        "plain"
    );
    // The request declares tools, which `plain` lacks.
    let tools = Needs {
        tools: true,
        ..needs(10)
    };
    assert_eq!(
        names(&r.plan_for(&tools, &p, now, Some(&s)).unwrap()),
        ["a"]
    );
    // Its breaker opens: it goes last, like any unhealthy candidate.
    for _ in 0..3 {
        plain.health.failure(now);
    }
    assert_eq!(
        names(&r.plan_for(&needs(10), &p, now, Some(&s)).unwrap()),
        ["a", "plain"]
    );
    // A candidate the route no longer has (a policy took it away) is ignored.
    let without = r.retain(|m| m.name != "plain");
    assert_eq!(
        names(&without.plan_for(&needs(10), &p, now, Some(&s)).unwrap()),
        ["a"]
    );
}

#[test]
fn cheapest_prices_the_sticky_candidate_with_the_sessions_cache_share() {
    // b's list price is 5% under a's; cached input is a tenth of input.
    let a = model("a", 1_000_000, 1_000_000, 200_000, all());
    let b = model("b", 950_000, 1_000_000, 200_000, all());
    let r = route(Strategy::Cheapest, vec![a, b]);
    let now = Instant::now();
    let p = default_price();
    let long = Needs {
        max_output: Some(200),
        ..needs(50_000)
    };
    assert_eq!(
        names(&r.plan_for(&long, &p, now, None).unwrap())[0],
        "b",
        "without a session, list prices decide"
    );
    // The session's context sits in a's cache: a stays.
    let plan = r.plan_for(&long, &p, now, Some(&sticky("a", 0.9))).unwrap();
    assert_eq!(names(&plan)[0], "a");
    // With little of it cached, paying b for the whole context is cheaper.
    let plan = r
        .plan_for(&long, &p, now, Some(&sticky("a", 0.02)))
        .unwrap();
    assert_eq!(names(&plan)[0], "b");
    // Others are priced as reading the context afresh, whatever their
    // model-wide cache share.
    let c = model("c", 950_000, 1_000_000, 200_000, all());
    for _ in 0..20 {
        c.health.success(Duration::from_millis(1), Some(0.9));
    }
    let r = route(Strategy::Cheapest, vec![r.candidates[0].clone(), c]);
    let plan = r.plan_for(&long, &p, now, Some(&sticky("a", 0.9))).unwrap();
    assert_eq!(names(&plan), ["a", "c"]);
}
