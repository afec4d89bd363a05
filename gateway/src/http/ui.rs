//! The spend page at `/ui`: a few static files (`gateway/ui/`) embedded in
//! the binary at build time, no build step and nothing fetched from
//! elsewhere. The files are public and hold no data; the page asks the
//! authenticated API (`/v1/me`, `/v1/spend`, `/v1/spend/teams`) with the key
//! the reader pastes. Every response under `/ui` carries a strict content
//! security policy (scripts and styles from these files only) and is
//! revalidated by its ETag, so a new binary's page is seen at once.

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The page's content security policy: everything from this origin only,
/// no inline scripts or styles, no plugins, no framing, no form posts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// A hash of the body, computed at build time: the ETag.
    hash: u64,
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../ui/", $name)),
            hash: fnv1a(include_bytes!(concat!("../../ui/", $name))),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("chart.js", "text/javascript; charset=utf-8"),
    asset!("format.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Answers with `asset`, or 304 when the client holds this version.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let status = if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if fresh { &[][..] } else { asset.body };
    (
        status,
        [
            (header::CONTENT_TYPE, asset.content_type.to_owned()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

/// `GET /ui`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    match ASSETS.first() {
        Some(page) => serve(page, &headers),
        None => not_found(),
    }
}

/// `GET /ui/{file}`: the page's scripts, styles and icon.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset, &headers),
        None => not_found(),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        "Not found\n",
    )
        .into_response()
}

/// Puts the security headers on every response under `/ui`, and
/// `Cache-Control: no-cache` (revalidate by ETag) where none is set.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_embedded_and_the_page_comes_first() {
        assert_eq!(ASSETS[0].name, "index.html");
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            assert_eq!(a.hash, fnv1a(a.body));
        }
    }

    #[test]
    fn the_page_loads_only_files_that_are_embedded() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        for part in page.split("\"/ui/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html refers to /ui/{name}, which is not embedded"
            );
        }
        assert!(!page.contains("style="), "no inline styles under the CSP");
        assert!(
            !page.contains("<script>"),
            "no inline scripts under the CSP"
        );
    }
}
