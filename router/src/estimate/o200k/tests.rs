//! The counter against tiktoken's `o200k_base` on texts of every kind: each
//! count must be exactly `encode_ordinary(text).len()`.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use super::{O200k, PATTERN, SMALL_PIECE};

fn counter() -> &'static O200k {
    static COUNTER: OnceLock<O200k> = OnceLock::new();
    COUNTER.get_or_init(|| O200k::new().unwrap())
}

fn tiktoken() -> &'static CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

/// Asserts the counts agree on `text`, naming it when they do not.
#[track_caller]
fn assert_same_count(text: &str) {
    let expected = tiktoken().encode_ordinary(text).len();
    let counted = counter().count(text).unwrap();
    assert_eq!(counted, expected, "on {text:?}");
}

/// A small seeded generator (splitmix64), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A character from a weighted mix of the classes the pattern and the
    /// vocabulary treat differently.
    fn char(&mut self) -> char {
        const WHITESPACE: &[char] = &[
            ' ', ' ', ' ', '\n', '\t', '\r', '\u{a0}', '\u{3000}', '\u{2028}', '\u{0b}',
        ];
        const PUNCTUATION: &[char] = &[
            '.', ',', '\'', '"', '!', '?', '-', '_', '/', '\\', '(', ')', '{', '}', '[', ']', ':',
            ';', '<', '>', '=', '+', '*', '&', '%', '$', '#', '@', '`', '~', '|', '^', '…', '—',
            '«', '»', '’', '“', '€', '¥', '©', '°', '·',
        ];
        let ranges: &[(u32, u32)] = &[
            (0x41, 0x5a),       // A-Z
            (0x61, 0x7a),       // a-z
            (0x30, 0x39),       // 0-9
            (0xc0, 0x24f),      // Latin-1 and Latin Extended
            (0x300, 0x36f),     // combining marks
            (0x370, 0x3ff),     // Greek
            (0x400, 0x4ff),     // Cyrillic
            (0x590, 0x5ff),     // Hebrew
            (0x600, 0x6ff),     // Arabic
            (0x900, 0x97f),     // Devanagari
            (0xe00, 0xe7f),     // Thai
            (0x1100, 0x11ff),   // Hangul Jamo
            (0x3040, 0x30ff),   // Hiragana, Katakana
            (0x4e00, 0x9fff),   // CJK
            (0xac00, 0xd7a3),   // Hangul syllables
            (0xff00, 0xffef),   // fullwidth forms
            (0x1f300, 0x1faff), // emoji and symbols
            (0x1d400, 0x1d7ff), // mathematical letters and digits
            (0x0, 0x7f),        // any ASCII, controls too
            (0x0, 0x10ffff),    // anything
        ];
        match self.below(10) {
            0 | 1 => *self.pick(WHITESPACE),
            2 | 3 => *self.pick(PUNCTUATION),
            _ => loop {
                let &(lo, hi) = self.pick(ranges);
                let c = lo + (self.next() % u64::from(hi - lo + 1)) as u32;
                if let Some(c) = char::from_u32(c) {
                    break c;
                }
            },
        }
    }

    /// A string of up to `max` characters; runs of one class (or one
    /// character) come often, so long pieces are common.
    fn string(&mut self, max: usize) -> String {
        let len = self.below(max + 1);
        let mut out = String::new();
        while out.chars().count() < len {
            let c = self.char();
            let run = match self.below(8) {
                0 => 1 + self.below(150),
                1 => 1 + self.below(8),
                _ => 1,
            };
            for _ in 0..run {
                out.push(c);
            }
        }
        out
    }
}

#[test]
fn the_pattern_is_tiktokens() {
    assert_eq!(PATTERN, tiktoken_rs::O200K_BASE_PAT_STR);
}

#[test]
fn counts_match_tiktoken_on_written_texts() {
    let texts = [
        "",
        "hello world",
        "Hello, World!",
        " leading space and trailing space ",
        "It's what THEY'LL say: we'd've, you're, I'M, she'S, they've, y'all'd",
        "The quick brown fox jumps over the lazy dog. ",
        "lorem ipsum dolor ",
        "{}",
        "Tokenization is the process of splitting text into tokens; \
         byte-pair encoding merges the most frequent pairs first.",
        "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
        "def f(a, b=None):\n\tif a is None:\n\t\treturn {'k': [1, 2, 3]}\r\n\treturn a // b  # comment\n",
        "const url = `https://example.com/api/v1/items?id=42&sort=desc#frag`;",
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi \u00e9 \n"}],"temperature":0.7,"n":1}"#,
        "<div class=\"a\"><span>text</span></div>\n<!-- comment -->",
        "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY id DESC LIMIT 10;",
        "3.14159265358979 1,000,000 0x7fffffff 1e-10 -42 +7 12345678901234567890 ٣٤٥ ½ ²",
        "2024-06-01T12:34:56.789Z 192.168.0.1 +1 (555) 123-4567",
        "机器学习是人工智能的一个分支。它使计算机能够从数据中学习。",
        "日本語のテキスト、カタカナとひらがな、そして漢字。東京は大きい都市です。",
        "한국어 텍스트입니다. 안녕하세요, 세계!",
        "مرحبا بالعالم. هذه جملة باللغة العربية مع أرقام ١٢٣ و 456.",
        "שלום עולם, זה טקסט בעברית.",
        "नमस्ते दुनिया। यह हिंदी में एक वाक्य है।",
        "สวัสดีชาวโลก นี่คือประโยคภาษาไทย",
        "Привет, мир! Это предложение на русском языке.",
        "Γειά σου Κόσμε! Ελληνικά κείμενα.",
        "Ünïcödé çãn bé trîcky: naïve café, São Paulo, Zürich, Ærøskøbing, İstanbul, ǅemal",
        "e\u{301}\u{302}\u{303} a\u{308}o\u{308}u\u{308} combining marks",
        "emoji 😀😃😄 👩‍👩‍👧‍👦 👍🏽 🇫🇷🇯🇵 ❤️ ✨🔥💯 1️⃣ 🏳️‍🌈",
        "mixed: English, 中文, العربية, русский, 日本語, 🚀 and 123 in one line.",
        "tabs\t\tand\t\t\tspaces    and\n\n\nnewlines\r\n\r\nand\u{a0}nbsp\u{3000}ideographic",
        "trailing whitespace    \n    \n",
        "\n\n\n\n\n\n\n\n\n\n",
        "                                                                              x",
        "!!!!!!!!!!!!???????........--------========________********////////\\\\\\\\",
        "/* ------------------------------------------------------------------ */",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "\u{0}\u{1}\u{7f}\u{80}\u{ffff}\u{10ffff}\u{fffd}",
    ];
    for text in texts {
        assert_same_count(text);
    }
}

#[test]
fn counts_match_tiktoken_on_long_runs_that_take_the_heap_path() {
    let runs = [
        " ".repeat(5_000),
        format!("{}x", " ".repeat(5_000)),
        "\t \n".repeat(1_000),
        "\r\n".repeat(1_000),
        "a".repeat(1_000),
        "ab".repeat(600),
        "xyzzy".repeat(300),
        "Supercalifragilisticexpialidocious".repeat(40),
        "0123456789".repeat(200),
        "-".repeat(2_000),
        "=-".repeat(700),
        "é".repeat(700),
        "字".repeat(500),
        "機械学習人工知能".repeat(60),
        "😀".repeat(300),
        "👩‍👩‍👧‍👦".repeat(60),
        "\u{301}".repeat(400),
        "ﷺ".repeat(200),
        "ab1c2d3".repeat(200),
        "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCB0ZXh0".repeat(30),
    ];
    for text in &runs {
        assert_same_count(text);
    }
    // Every length around the switch from the small to the large merge.
    for len in SMALL_PIECE - 3..SMALL_PIECE + 3 {
        assert_same_count(&"q".repeat(len));
        assert_same_count(&"xz".repeat(len).chars().take(len).collect::<String>());
        assert_same_count(&"#".repeat(len));
    }
}

#[test]
fn counts_match_tiktoken_on_real_prompts() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut seen = 0;
    for dir in ["agents", "translate"] {
        for entry in std::fs::read_dir(format!("{fixtures}/{dir}")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert_same_count(&text);
            // And as the estimator sees it: the strings inside the JSON.
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut strings = Vec::new();
            collect_strings(&value, &mut strings);
            for s in strings {
                assert_same_count(s);
            }
            seen += 1;
        }
    }
    assert!(seen >= 5, "{seen} fixtures");
}

fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[test]
fn counts_match_tiktoken_on_seeded_random_strings() {
    let mut rng = Rng(0x7011_6a7e);
    for _ in 0..3_000 {
        assert_same_count(&rng.string(120));
    }
    for _ in 0..100 {
        assert_same_count(&rng.string(2_000));
    }
}

#[test]
fn counts_match_tiktoken_on_random_words_and_bytes() {
    // Random lowercase "words" are rarely whole tokens, so they exercise the
    // merge itself far more than natural text does.
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let words: Vec<String> = (0..1 + rng.below(12))
            .map(|_| {
                let max = if rng.below(10) == 0 { 160 } else { 14 };
                let len = 1 + rng.below(max);
                (0..len)
                    .map(|_| char::from(b'a' + rng.below(26) as u8))
                    .collect()
            })
            .collect();
        assert_same_count(&words.join(" "));
    }
    // Arbitrary bytes, made valid UTF-8 the lossy way.
    for _ in 0..1_000 {
        let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
        assert_same_count(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn a_text_the_pattern_gives_up_on_is_an_error_where_tiktoken_panics() {
    // A million no-break spaces before a word: backtracking for
    // `\s+(?!\S)` runs out of stack. The estimator never hands the counter
    // a piece this long.
    let text = format!("{}x", "\u{a0}".repeat(1_100_000));
    assert!(counter().count(&text).is_err());
    let tiktoken = std::panic::catch_unwind(|| tiktoken().encode_ordinary(&text).len());
    assert!(tiktoken.is_err());
    // ASCII is cut without the regex, so nothing gives up.
    let text = format!("{}x", " ".repeat(1_100_000));
    assert!(counter().count(&text).is_ok());
    let text = format!("{}x", " ".repeat(100_000));
    assert_eq!(counter().count(&text).unwrap(), 783);
}

/// An ASCII character, weighted toward what the pattern tells apart:
/// upper and lower case, digits, each kind of whitespace, apostrophes (for
/// contractions), slashes and newlines (which trail punctuation).
fn ascii_char(rng: &mut Rng) -> char {
    const SPECIAL: &[u8] = b"  \t\n\r\x0b\x0c'''//.,-_!?\"()[]{}:;<>=+*&%$#@`~|^\\\x00\x1c\x7f";
    let b = match rng.below(8) {
        0 => b'A' + rng.below(26) as u8,
        1 | 2 => b'a' + rng.below(26) as u8,
        3 => b'0' + rng.below(10) as u8,
        4 | 5 => *rng.pick(SPECIAL),
        6 => *rng.pick(b"sStTrReEvVmMlLdD"),
        _ => rng.below(128) as u8,
    };
    b as char
}

#[test]
fn ascii_text_is_cut_into_the_patterns_pieces() {
    let pattern = fancy_regex::Regex::new(PATTERN).unwrap();
    let mut rng = Rng(0x5eed_a5c1);
    for case in 0..100_000 {
        let len = rng.below(40);
        let text: String = (0..len).map(|_| ascii_char(&mut rng)).collect();
        let want: Vec<&str> = pattern
            .find_iter(&text)
            .map(|m| m.unwrap().as_str())
            .collect();
        let got: Vec<&str> = super::ascii_pieces(text.as_bytes())
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect();
        assert_eq!(got, want, "case {case}: {text:?}");
    }
}
