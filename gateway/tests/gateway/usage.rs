//! Usage normalization for every vendor shape, end to end: the mock upstream
//! reports usage the way each vendor does, and the record must match the
//! mock's own counts without double counting cached tokens.

use loadtest::mock::MockOptions;
use router::sim::{self, SimConfig, UsageShape};
use router::UsageSource;
use serde_json::json;

use crate::helpers::*;

fn vendor_sim(shape: UsageShape) -> SimConfig {
    SimConfig {
        usage_shape: shape,
        output_tokens: 12,
        reasoning_tokens: 4,
        cached_tokens: 5,
        ..fast_sim()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_usage_shape_is_normalized_streamed_and_not() {
    for shape in UsageShape::ALL
        .into_iter()
        .filter(|s| *s != UsageShape::None)
    {
        let sim = vendor_sim(shape);
        let mock = spawn_mock(MockOptions {
            sim: sim.clone(),
            ..Default::default()
        })
        .await;
        let mut app = spawn_app(upstream_config(&mock, "")).await;
        for stream in [false, true] {
            let mut body = chat_body("m");
            body["stream"] = json!(stream);
            let resp = app.chat(body).await;
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
            let rec = app.next_record().await;
            // The mock's own figures for the request it received.
            let received = mock.received().last().unwrap().body.clone();
            let plan = sim::plan(&received, &sim);
            let what = format!("{shape:?} stream={stream}");
            assert_eq!(rec.usage_source, UsageSource::Provider, "{what}");
            assert_eq!(rec.usage.prompt_total(), plan.prompt_tokens, "{what}");
            assert_eq!(rec.usage.cached_input, 5, "{what}");
            assert_eq!(
                rec.usage.input,
                plan.prompt_tokens - 5,
                "{what}: cached tokens are not counted twice"
            );
            assert_eq!(rec.usage.cache_write, 0, "{what}");
            assert_eq!(rec.usage.output, 12, "{what}");
            let reasoning = if shape == UsageShape::Kimi { 0 } else { 4 };
            assert_eq!(rec.usage.reasoning, reasoning, "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_that_reports_no_usage_is_estimated_with_the_tokenizer() {
    let sim = vendor_sim(UsageShape::None);
    let mock = spawn_mock(MockOptions {
        sim,
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    for stream in [false, true] {
        let mut body = chat_body("m");
        body["stream"] = json!(stream);
        app.chat(body).await.bytes().await.unwrap();
        let rec = app.next_record().await;
        assert_eq!(rec.usage_source, UsageSource::Estimated, "stream={stream}");
        assert!(rec.complete());
        let received = mock.received().last().unwrap().body.clone();
        assert_eq!(
            rec.usage.input,
            router::estimate::chat_prompt(&received),
            "stream={stream}"
        );
        assert!(
            rec.usage.output >= 12,
            "stream={stream}: reasoning and answer are both counted"
        );
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"tollgate_usage_estimated_total{model="m",provider="up"} 2"#),
        "{metrics}"
    );
}
