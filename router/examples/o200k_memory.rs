//! What a token counter costs in memory: the process's resident set
//! (`VmRSS`, and its anonymous and file-backed parts) before and after
//! loading it and counting a corpus with it, for the estimator's own
//! `o200k_base` counter and for tiktoken's `CoreBPE` (what the estimator
//! used before), each in a process of its own.
//!
//!   cargo run --release -p tollgate-router --example o200k_memory
//!
//! Run without arguments it starts itself once per counter and prints their
//! figures side by side; `-- ours`, `-- tiktoken` or `-- tiktoken-dropped`
//! (loaded, then dropped: what building from a temporary `CoreBPE` would
//! leave behind) runs one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;

const MODES: [&str; 3] = ["ours", "tiktoken", "tiktoken-dropped"];

fn main() {
    match std::env::args().nth(1).as_deref() {
        None => {
            println!(
                "{:<17} {:>28} {:>28} {:>28}",
                "counter", "start (rss/anon/file MiB)", "loaded", "after counting"
            );
            for mode in MODES {
                let out = Command::new(std::env::current_exe().unwrap())
                    .arg(mode)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{mode}: {out:?}");
                print!("{}", String::from_utf8_lossy(&out.stdout));
            }
        }
        Some(mode) => run(mode),
    }
}

fn run(mode: &str) {
    let corpus = corpus();
    let start = rss();
    let (loaded, counted) = match mode {
        "ours" => {
            router::estimate::warm_up();
            let loaded = rss();
            let tokens: u64 = corpus.iter().map(|t| router::estimate::count_text(t)).sum();
            assert!(tokens > 0);
            (loaded, rss())
        }
        "tiktoken" => {
            let bpe = tiktoken_rs::o200k_base().unwrap();
            let loaded = rss();
            let tokens: usize = corpus.iter().map(|t| bpe.encode_ordinary(t).len()).sum();
            assert!(tokens > 0);
            (loaded, rss())
        }
        "tiktoken-dropped" => {
            let bpe = tiktoken_rs::o200k_base().unwrap();
            let tokens: usize = corpus.iter().map(|t| bpe.encode_ordinary(t).len()).sum();
            assert!(tokens > 0);
            let before_drop = rss();
            drop(bpe);
            (before_drop, rss())
        }
        other => panic!("unknown counter {other:?}; one of {MODES:?}"),
    };
    println!("{mode:<17} {start:>28} {loaded:>28} {counted:>28}");
}

/// Resident set, anonymous and file-backed, in MiB, from `/proc/self/status`.
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    format!(
        "{:.1} / {:.1} / {:.1}",
        kib("VmRSS:"),
        kib("RssAnon:"),
        kib("RssFile:")
    )
}

/// Some megabytes of varied text in pieces of at most 16 KiB, so every
/// counter has touched its tables and pattern caches.
fn corpus() -> Vec<String> {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/agents");
    let mut text = String::new();
    for entry in std::fs::read_dir(fixtures).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    text.push_str(
        &"机器学习是人工智能的一个分支。日本語のテキスト。한국어 텍스트. مرحبا بالعالم. \
          Привет, мир! नमस्ते दुनिया। 🚀✨👍🏽 naïve café. "
            .repeat(2_000),
    );
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(8 * 1024)
        .map(|chunk| chunk.iter().collect())
        .collect()
}
