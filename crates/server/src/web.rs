//! The web UI: static files compiled into the binary, served at `/` and `/ui/…`.
//!
//! The UI is plain ES modules and CSS (no build step), talking to the same JSON API as every
//! other client. Every response carries a strict Content-Security-Policy: scripts and styles come
//! only from this origin, so text that users wrote can never run as code even if a page forgot to
//! escape it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

use crate::error::ApiError;

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// Policy for every UI response; `data:`/`blob:` images carry live previews and downloads.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                   style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /`: the single page that loads the app.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /favicon.ico`: the icon, for pages that do not name one (share pages, the API itself).
pub async fn favicon(headers: HeaderMap) -> Response {
    serve("icon.svg", &headers)
}

/// `GET /ui/{*path}`: scripts, styles and icons.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        _ => "application/octet-stream",
    }
}

/// The UI's Korean font faces, served from the fonts compose already bundles.
const UI_FONTS: [&str; 2] = ["NanumSquareR.ttf", "NanumSquareB.ttf"];

/// The ETag of an embedded file, hashed once per file (the fonts are 700 KB each).
fn etag(body: &'static [u8]) -> String {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<usize, String>>> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = body.as_ptr() as usize;
    if let Some(e) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return e;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    let e = format!("\"{:016x}\"", h.finish());
    if let Ok(mut c) = cache.lock() {
        c.insert(key, e.clone());
    }
    e
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    // include_dir paths never contain `..`; a request for one simply finds nothing.
    let font = path
        .strip_prefix("fonts/")
        .filter(|n| UI_FONTS.contains(n))
        .and_then(atelier_compose::Fonts::bundled_file);
    let Some(body) = font.or_else(|| WEB.get_file(path).map(|f| f.contents())) else {
        return ApiError::not_found("file").into_response();
    };
    let etag = etag(body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], body).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: assets are tiny and must never outlive an upgrade of the binary.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let index = WEB.get_file("index.html").expect("index.html");
        let html = index.contents_utf8().expect("utf-8");
        for needle in ["/ui/app.js", "/ui/app.css"] {
            assert!(html.contains(needle), "index.html links {needle}");
        }
        // Every relative import in every module resolves to an embedded file.
        let mut files = Vec::new();
        fn walk<'a>(d: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
            out.extend(d.files());
            for sub in d.dirs() {
                walk(sub, out);
            }
        }
        walk(&WEB, &mut files);
        for f in files
            .iter()
            .filter(|f| f.path().extension().is_some_and(|e| e == "js"))
        {
            let text = f.contents_utf8().expect("utf-8");
            let dir = f.path().parent().unwrap_or(std::path::Path::new(""));
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['\'', '"']).nth(1) else {
                    continue;
                };
                let target = dir.join(spec);
                let norm: std::path::PathBuf =
                    target
                        .components()
                        .fold(std::path::PathBuf::new(), |mut p, c| {
                            match c {
                                std::path::Component::ParentDir => {
                                    p.pop();
                                }
                                std::path::Component::CurDir => {}
                                c => p.push(c),
                            }
                            p
                        });
                assert!(
                    WEB.get_file(&norm).is_some(),
                    "{} imports {spec}, which is not embedded",
                    f.path().display()
                );
            }
        }
    }

    /// Every `t('…')` literal in the UI's modules, outside comments.
    fn ui_strings() -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![&WEB];
        while let Some(d) = stack.pop() {
            stack.extend(d.dirs());
            for f in d
                .files()
                .filter(|f| f.path().extension().is_some_and(|e| e == "js"))
            {
                let text = f.contents_utf8().unwrap_or_default();
                for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    let mut rest = line;
                    while let Some(i) = rest.find("t('") {
                        let before = rest[..i].chars().last();
                        rest = &rest[i + 3..];
                        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                            continue;
                        }
                        if let Some(end) = rest.find('\'') {
                            out.push((f.path().display().to_string(), rest[..end].to_owned()));
                            rest = &rest[end + 1..];
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_ui_string_has_a_korean_translation() {
        let ko = WEB
            .get_file("lib/ko.js")
            .and_then(|f| f.contents_utf8())
            .expect("lib/ko.js");
        let keys: std::collections::HashSet<String> = ko
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.split_once("\": ").map(|(k, _)| k.replace("\\\"", "\"")))
            .collect();
        let strings = ui_strings();
        assert!(
            strings.len() > 150,
            "found only {} UI strings",
            strings.len()
        );
        let missing: Vec<String> = strings
            .iter()
            .filter(|(_, s)| !keys.contains(s))
            .map(|(f, s)| format!("{f}: {s}"))
            .collect();
        assert!(missing.is_empty(), "no Korean for: {missing:#?}");
    }

    #[test]
    fn assets_get_types_and_unknown_paths_are_404() {
        let r = serve("app.css", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("app.css", &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
