//! What the driver tests share: a fast mock upstream on loopback, options
//! for short runs, the `loadtest` binary, and an XML well-formedness check.

use std::process::Output;
use std::time::Duration;

use loadtest::drive::{Api, DriveOptions, Pace};
use loadtest::mock::{self, MockHandle, MockOptions};
use router::sim::SimConfig;

pub const APIS: [Api; 3] = [Api::Chat, Api::Messages, Api::Responses];

/// A mock on port 0 that answers 8 tokens at once, with `key` required when
/// set.
pub async fn fast_mock(key: Option<&str>) -> MockHandle {
    mock::spawn(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            sim: fast(),
            api_key: key.map(str::to_owned),
            ..MockOptions::default()
        },
    )
    .await
    .unwrap()
}

/// The simulated model, answering 8 tokens without pauses.
pub fn fast() -> SimConfig {
    SimConfig {
        ttft: Duration::ZERO,
        tokens_per_second: 0.0,
        output_tokens: 8,
        ..SimConfig::default()
    }
}

/// A short run against `mock`, no progress line.
pub fn options(mock: &MockHandle, api: Api, stream: bool, pace: Pace) -> DriveOptions {
    DriveOptions {
        api,
        base_url: mock.base_url(),
        api_key: None,
        model: "demo".to_owned(),
        pace,
        duration: Duration::from_millis(300),
        max_requests: None,
        stream,
        prompt_words: 16,
        max_tokens: None,
        progress: None,
        keep_ids: false,
    }
}

/// A closed loop of four clients against `mock` that ends after `requests`
/// (the duration is long enough never to cut it short).
pub fn bounded(mock: &MockHandle, api: Api, stream: bool, requests: u64) -> DriveOptions {
    DriveOptions {
        duration: Duration::from_secs(30),
        max_requests: Some(requests),
        ..options(mock, api, stream, Pace::Closed { clients: 4 })
    }
}

/// Runs the `loadtest` binary to its end, off the async workers so an
/// in-process mock keeps answering it.
pub async fn loadtest(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("TOLLGATE_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Checks that `doc` is well-formed XML (one root, tags nested and closed,
/// attributes quoted and unique, only the predefined or numeric entities)
/// and returns the root element's name.
pub fn well_formed(doc: &str) -> Result<String, String> {
    let mut rest = doc.trim_start();
    if let Some(r) = rest.strip_prefix("<?xml") {
        rest = &r[r.find("?>").ok_or("unterminated declaration")? + 2..];
    }
    let mut open: Vec<&str> = Vec::new();
    let mut root = None;
    while !rest.is_empty() {
        let text_end = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..text_end];
        entities(text)?;
        if open.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        rest = &rest[text_end..];
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
        } else if let Some(r) = rest.strip_prefix("</") {
            let (name, r) = name(r)?;
            let r = r.trim_start().strip_prefix('>').ok_or("bad end tag")?;
            match open.pop() {
                Some(o) if o == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            rest = r;
        } else {
            let (tag, mut r) = name(&rest[1..])?;
            if open.is_empty() && root.replace(tag.to_owned()).is_some() {
                return Err(format!("a second root <{tag}>"));
            }
            let mut seen: Vec<&str> = Vec::new();
            loop {
                let trimmed = r.trim_start();
                if let Some(after) = trimmed.strip_prefix("/>") {
                    r = after;
                    break;
                }
                if let Some(after) = trimmed.strip_prefix('>') {
                    open.push(tag);
                    r = after;
                    break;
                }
                if trimmed.len() == r.len() {
                    return Err(format!("<{tag}>: no space before an attribute"));
                }
                let (attr, after) = name(trimmed)?;
                if seen.contains(&attr) {
                    return Err(format!("<{tag}>: {attr} twice"));
                }
                seen.push(attr);
                let after = after
                    .trim_start()
                    .strip_prefix('=')
                    .ok_or("attribute without =")?;
                let after = after.trim_start();
                let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
                let quote = quote.ok_or(format!("<{tag} {attr}=...> not quoted"))?;
                let body = &after[1..];
                let close = body.find(quote).ok_or("unterminated attribute")?;
                let value = &body[..close];
                if value.contains('<') {
                    return Err(format!("<{tag} {attr}> holds '<'"));
                }
                entities(value)?;
                r = &body[close + 1..];
            }
            rest = r;
        }
    }
    match (open.last(), root) {
        (Some(o), _) => Err(format!("<{o}> is never closed")),
        (None, None) => Err("no root element".to_owned()),
        (None, Some(root)) => Ok(root),
    }
}

fn name(s: &str) -> Result<(&str, &str), String> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || "_:-.".contains(c)))
        .unwrap_or(s.len());
    match s[..end].chars().next() {
        Some(c) if c.is_alphabetic() || c == '_' || c == ':' => Ok((&s[..end], &s[end..])),
        _ => Err(format!("not a name at {:?}", &s[..s.len().min(20)])),
    }
}

fn entities(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let end = text[i..].find(';').ok_or("unterminated entity")?;
        let entity = &text[i + 1..i + end];
        let ok = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
            || entity
                .strip_prefix("#x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || entity
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(format!("unknown entity &{entity};"));
        }
    }
    Ok(())
}

#[test]
fn the_xml_check_rejects_what_is_not_well_formed() {
    assert_eq!(
        well_formed(r#"<?xml version="1.0"?><svg a="1"><g b='x &amp; y'/>t&lt;</svg>"#),
        Ok("svg".to_owned())
    );
    for bad in [
        "<a><b></a></b>",
        "<a x=1/>",
        "<a>&foo;</a>",
        "<a>",
        "<a/><b/>",
        r#"<a x="1" x="2"/>"#,
        r#"<a x="<"/>"#,
        "<a>fish & chips</a>",
        "",
    ] {
        assert!(well_formed(bad).is_err(), "{bad}");
    }
}
