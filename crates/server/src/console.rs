//! The web console: a single-page application (`console/` in the
//! repository) whose built files are embedded in the binary at compile
//! time, so `berth serve` serves it with no other process, CDN or network
//! access.
//!
//! Every path that no other plane owns (not `/v2`, `/api/v1`,
//! `/auth/token`, `/healthz`) is the console's: a file of the build when
//! one has that path, `index.html` for anything else (deep links such as
//! `/ns/team/app`; the application routes in the browser), except below
//! `/assets/`, where a missing file is a 404 rather than a page. The
//! console talks to the server only through `/api/v1` and `/auth/token`.

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Method, Response, StatusCode};

use crate::{full, Body};

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// No inline script or style, nothing from another origin, never framed.
/// `data:` images only for the small inline icons of the stylesheet.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's own page routes (its history router's deep links), beside
/// the files of the build. Only these are the console's: every other path
/// stays with `/v2`, so an unknown route still answers the registry's 404
/// (clients and conformance suites probe such paths) instead of a page.
const PAGES: [&str; 5] = ["/ns", "/settings", "/access", "/audit", "/storage"];

/// Whether `path` belongs to the console rather than to another plane.
pub(crate) fn owns(path: &str) -> bool {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    path == "/"
        || PAGES.iter().any(|p| under(p))
        || under("/assets")
        || asset(path.trim_start_matches('/')).is_some()
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

pub(crate) fn with_security_headers(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn text(status: StatusCode, msg: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(CONTENT_LENGTH, msg.len())
        .header(CACHE_CONTROL, "no-store")
        .body(full(msg))
        .expect("valid response")
}

/// Answers a console request; `enabled` is `[console] enabled`.
pub(crate) fn serve(enabled: bool, method: &Method, path: &str) -> Response<Body> {
    with_security_headers(respond(enabled, method, path))
}

fn respond(enabled: bool, method: &Method, path: &str) -> Response<Body> {
    if !enabled {
        return text(
            StatusCode::NOT_FOUND,
            "not found (the web console is turned off: [console] enabled = false)\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the web console answers GET and HEAD only\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let rel = path.trim_start_matches('/');
    // Vite puts a content hash in every file name under assets/: cache
    // them for good. Everything else may change with the next release.
    let (name, body, cache) = match asset(rel) {
        Some(b) if rel.starts_with("assets/") => (rel, b, "public, max-age=31536000, immutable"),
        Some(b) if !rel.is_empty() => (rel, b, "no-cache"),
        _ if rel.starts_with("assets/") => {
            return text(StatusCode::NOT_FOUND, "no such console asset\n")
        }
        _ => match asset("index.html") {
            Some(b) => ("index.html", b, "no-cache"),
            None => {
                return text(
                    StatusCode::NOT_FOUND,
                    "this build of berth has no web console (console/dist was empty)\n",
                )
            }
        },
    };
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, content_type(name))
        .header(CONTENT_LENGTH, body.len())
        .header(CACHE_CONTROL, cache);
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(body)
    };
    resp.body(full(body)).expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_planes_keep_their_paths() {
        for p in [
            "/v2",
            "/v2/",
            "/v2/a/tags/list",
            "/api/v1",
            "/api/v1/me",
            "/auth/token",
            "/healthz",
            // Neither a page nor a file: the registry's 404, not a page.
            "/v2x",
            "/api/v10",
            "/auth/tokens",
            "/v3/",
            "/nsx",
        ] {
            assert!(!owns(p), "{p} must not be the console's");
        }
        for p in [
            "/",
            "/ns",
            "/ns/team/app",
            "/settings",
            "/storage",
            "/assets/index.js",
        ] {
            assert!(owns(p), "{p} should be the console's");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/a-1.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/a-1.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn disabled_is_404_with_headers() {
        let r = serve(false, &Method::GET, "/");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(r.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }

    #[test]
    fn post_is_405() {
        let r = serve(true, &Method::POST, "/");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
