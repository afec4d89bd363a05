//! Token counting speed: the estimator's own `o200k_base` counter
//! (`router::estimate::count_text`) against tiktoken's `CoreBPE`
//! (`encode_ordinary(text).len()`, what the estimator used before), on the
//! same corpus in the same run, with the ratio new/old.
//!
//!   cargo run --release -p tollgate-router --example o200k_bench -- [ROUNDS]
//!
//! The corpus, cut into texts of at most 16 KiB (the pieces the estimator
//! tokenizes): the recorded agent prompts under `tests/fixtures` (whole JSON
//! bodies, and the strings inside them), prose and code in several
//! languages and scripts, and random lowercase words (rarely whole tokens,
//! so the merge itself is most of the work). Each kind is counted alone and
//! then all together, ROUNDS times (default 15), the two counters taking
//! turns; rates are the best round's, and new/old is the median of the
//! rounds' ratios (paired, so a machine busy for a while slows both alike).
//! The two must agree on every text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

const PIECE: usize = 16 * 1024;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ROUNDS is a number"))
        .unwrap_or(15);

    let load = Instant::now();
    let old = tiktoken_rs::o200k_base().unwrap();
    let old_load = load.elapsed();
    let load = Instant::now();
    router::estimate::warm_up();
    let new_load = load.elapsed();
    println!("load: tiktoken {old_load:.2?}, ours {new_load:.2?}");

    let kinds = corpus();
    let all: Vec<String> = kinds.iter().flat_map(|(_, t)| t.iter().cloned()).collect();
    println!(
        "{:<14} {:>9} {:>10} {:>14} {:>14} {:>9}",
        "corpus", "MiB", "tokens", "tiktoken tok/s", "ours tok/s", "new/old"
    );
    for (name, texts) in kinds.iter().map(|(n, t)| (*n, t)).chain([("all", &all)]) {
        let bytes: usize = texts.iter().map(String::len).sum();
        let mut old_times = Vec::new();
        let mut new_times = Vec::new();
        let mut tokens = 0;
        for round in 0..rounds {
            // Take turns at going first.
            for turn in [round % 2, 1 - round % 2] {
                let start = Instant::now();
                if turn == 0 {
                    let counted: usize = texts.iter().map(|t| old.encode_ordinary(t).len()).sum();
                    old_times.push(start.elapsed());
                    tokens = counted;
                } else {
                    let counted: u64 = texts.iter().map(|t| router::estimate::count_text(t)).sum();
                    new_times.push(start.elapsed());
                    assert_eq!(counted, tokens as u64, "the counts differ on {name}");
                }
            }
        }
        // Rounds are paired, so a machine busy for a while slows both of a
        // pair alike: the median of the pairs' ratios is the figure.
        let mut ratios: Vec<f64> = old_times
            .iter()
            .zip(&new_times)
            .map(|(old, new)| old.as_secs_f64() / new.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let rate = |times: &[Duration]| {
            tokens as f64
                / times
                    .iter()
                    .min()
                    .copied()
                    .unwrap_or(Duration::MAX)
                    .as_secs_f64()
        };
        println!(
            "{:<14} {:>9.2} {:>10} {:>14.0} {:>14.0} {:>9.3}",
            name,
            bytes as f64 / (1024.0 * 1024.0),
            tokens,
            rate(&old_times),
            rate(&new_times),
            ratios[ratios.len() / 2],
        );
    }
}

/// The corpus by kind, every text at most [`PIECE`] bytes.
fn corpus() -> Vec<(&'static str, Vec<String>)> {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut bodies = Vec::new();
    let mut strings = Vec::new();
    for dir in ["agents", "translate"] {
        let mut paths: Vec<_> = std::fs::read_dir(format!("{fixtures}/{dir}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let body = std::fs::read_to_string(path).unwrap();
            let value: serde_json::Value = serde_json::from_str(&body).unwrap();
            collect_strings(&value, &mut strings);
            bodies.push(body);
        }
    }

    let prose = "The gateway meters every request: it counts the prompt's tokens before \
        admitting it against the tenant's budget, relays the answer as it streams, and \
        settles the bill from the usage the provider reports (or, when none comes, from \
        its own estimate). It's fast, and it doesn't hold the whole answer in memory.\n\n";
    let code = "fn settle(usage: &Usage, price: &Price) -> Money {\n    let input = usage.input \
        as i128 * price.input_micros as i128;\n    let output = usage.output as i128 * \
        price.output_micros as i128;\n    Money::from_micros((input + output) / 1_000_000)\n}\n\
        def load(path):\n    with open(path) as f:\n        return json.load(f)  # {\"k\": [1, 2]}\n";
    let scripts = "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。\
        日本語のテキスト、カタカナとひらがな。한국어 텍스트입니다. \
        مرحبا بالعالم، هذه جملة باللغة العربية. Привет, мир! Это текст. \
        नमस्ते दुनिया। 🚀✨👍🏽 Ünïcödé café, Zürich. ";

    let mut words = String::new();
    let mut seed = 0x5eed_u64;
    while words.len() < 2 << 20 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let len = 1 + (seed >> 59) as usize % 12;
        for i in 0..len {
            words.push(char::from(b'a' + ((seed >> (i * 4)) % 26) as u8));
        }
        words.push(' ');
    }

    vec![
        ("agent bodies", cut(&bodies.concat())),
        ("agent strings", cut(&strings.concat())),
        ("prose", cut(&prose.repeat(4_000))),
        ("code", cut(&code.repeat(4_000))),
        ("scripts", cut(&scripts.repeat(4_000))),
        ("random words", cut(&words)),
    ]
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Cuts a text into pieces of at most [`PIECE`] bytes, after whitespace.
fn cut(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(PIECE);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end < rest.len() {
            if let Some(ws) = rest[..end].rfind(char::is_whitespace) {
                end = ws + rest[ws..].chars().next().map_or(1, char::len_utf8);
            }
        }
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}
