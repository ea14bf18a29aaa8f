//! The web console as a browser sees it: served at `/` and at deep links
//! from the binary's embedded build, with its assets' content types and
//! caching, security headers on every console response, and `[console]
//! enabled = false` turning it off. The other planes keep their paths.

mod common;

use common::{client, Server};
use reqwest::blocking::Response;

const HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn assert_security_headers(r: &Response, what: &str) {
    let csp = header(r, "content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{what}: CSP {csp:?} lacks {part}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: CSP allows inline code: {csp}"
    );
    for (k, v) in HEADERS {
        assert_eq!(header(r, k), v, "{what}: {k}");
    }
}

/// The asset paths index.html loads (`src="/assets/..."`, `href="/assets/..."`).
fn asset_paths(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_string)
        .collect()
}

#[test]
fn console_is_served_at_root_and_deep_links_with_security_headers() {
    let (srv, _dir) = Server::start();
    let c = client();
    let root = c.get(format!("{}/", srv.url())).send().unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(header(&root, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&root, "cache-control"), "no-cache");
    assert_security_headers(&root, "GET /");
    let html = root.text().unwrap();
    assert!(html.contains("<div id=\"root\"></div>"), "{html}");
    // No inline script: every <script> loads a file (the CSP forbids inline ones).
    for tag in html.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap();
        assert!(
            open.contains("src=\"/assets/"),
            "inline script in index.html: {tag}"
        );
    }
    for deep in [
        "/ns/team",
        "/ns/team/app",
        "/ns/team/a/b",
        "/settings",
        "/storage",
    ] {
        let r = c.get(format!("{}{deep}", srv.url())).send().unwrap();
        assert_eq!(r.status(), 200, "{deep}");
        assert_eq!(
            header(&r, "content-type"),
            "text/html; charset=utf-8",
            "{deep}"
        );
        assert_security_headers(&r, deep);
        assert_eq!(r.text().unwrap(), html, "{deep} is not index.html");
    }
}

#[test]
fn console_assets_have_content_types_and_long_caching() {
    let (srv, _dir) = Server::start();
    let c = client();
    let html = c
        .get(format!("{}/", srv.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let assets = asset_paths(&html);
    assert!(
        assets.iter().any(|a| a.ends_with(".js")),
        "no script in {html}"
    );
    assert!(
        assets.iter().any(|a| a.ends_with(".css")),
        "no stylesheet in {html}"
    );
    for a in &assets {
        let r = c.get(format!("{}{a}", srv.url())).send().unwrap();
        assert_eq!(r.status(), 200, "{a}");
        let want = if a.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(header(&r, "content-type"), want, "{a}");
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable",
            "{a}"
        );
        assert_security_headers(&r, a);
        let len: usize = header(&r, "content-length").parse().unwrap();
        let body = r.bytes().unwrap();
        assert_eq!(body.len(), len, "{a}");
        assert!(len > 100, "{a} is nearly empty");
        let head = c.head(format!("{}{a}", srv.url())).send().unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(header(&head, "content-length"), len.to_string());
        assert!(head.bytes().unwrap().is_empty(), "HEAD {a} sent a body");
    }
    let icon = c.get(format!("{}/favicon.svg", srv.url())).send().unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(header(&icon, "content-type"), "image/svg+xml");
    // A missing asset is a 404, not the page (a stale cached page asking
    // for an old bundle must not get HTML as JavaScript).
    let gone = c
        .get(format!("{}/assets/index-00000000.js", srv.url()))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert_security_headers(&gone, "missing asset");
    let post = c.post(format!("{}/", srv.url())).send().unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(header(&post, "allow"), "GET, HEAD");
    assert_security_headers(&post, "POST /");
}

#[test]
fn console_leaves_the_other_planes_alone() {
    let (srv, _dir) = Server::start();
    let c = client();
    let v2 = c.get(format!("{}/v2/", srv.url())).send().unwrap();
    assert_eq!(v2.status(), 200);
    assert_eq!(
        header(&v2, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let unknown = c.get(format!("{}/v2/a", srv.url())).send().unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(header(&unknown, "content-type").starts_with("application/json"));
    let api = c
        .get(format!("{}/api/v1/nothing", srv.url()))
        .send()
        .unwrap();
    assert_eq!(api.status(), 404);
    assert!(header(&api, "content-type").starts_with("application/json"));
    // A path that is neither a console page nor one of its files stays the
    // registry's 404 (the conformance suite probes `/v3/`).
    for path in ["/v3/", "/nothing", "/nsx"] {
        let r = c.get(format!("{}{path}", srv.url())).send().unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            header(&r, "content-type").starts_with("application/json"),
            "{path}"
        );
    }
    let openapi = c
        .get(format!("{}/api/v1/openapi.json", srv.url()))
        .send()
        .unwrap();
    assert_eq!(openapi.status(), 200);
    assert_eq!(
        c.get(format!("{}/healthz", srv.url()))
            .send()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn console_loads_without_credentials_in_token_mode() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, "[auth]\nmode = \"token\"\n").unwrap();
    let data = dir.path().join("data");
    let srv = Server::start_in(&data, &["--config", cfg.to_str().unwrap()]);
    let c = client();
    // The page itself is public (it holds no data); signing in happens in it.
    let root = c.get(format!("{}/ns/team/app", srv.url())).send().unwrap();
    assert_eq!(root.status(), 200);
    assert_security_headers(&root, "token mode");
    // What it shows needs credentials.
    let me = c.get(format!("{}/api/v1/me", srv.url())).send().unwrap();
    assert_eq!(me.status(), 401);
    let ns = c
        .get(format!("{}/api/v1/namespaces/team", srv.url()))
        .send()
        .unwrap();
    assert!(
        matches!(ns.status().as_u16(), 401 | 403 | 404),
        "{}",
        ns.status()
    );
}

#[test]
fn console_disabled_answers_404_everywhere_it_lived() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, "[console]\nenabled = false\n").unwrap();
    let data = dir.path().join("data");
    let srv = Server::start_in(&data, &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let html = {
        // Learn an asset path from an enabled server to ask the disabled one.
        let (on, _d) = Server::start();
        c.get(format!("{}/", on.url()))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let mut paths = vec![
        "/".to_string(),
        "/ns/team/app".into(),
        "/favicon.svg".into(),
    ];
    paths.extend(asset_paths(&html));
    for p in &paths {
        let r = c.get(format!("{}{p}", srv.url())).send().unwrap();
        assert_eq!(r.status(), 404, "{p} with the console off");
        assert_security_headers(&r, p);
        assert!(r.text().unwrap().contains("turned off"), "{p}");
    }
    // The registry itself still works.
    assert_eq!(
        c.get(format!("{}/v2/", srv.url())).send().unwrap().status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/api/v1/namespaces", srv.url()))
            .send()
            .unwrap()
            .status(),
        200
    );
}

fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn storage_history_records_a_daily_sample_per_namespace() {
    let (mut srv, dir) = Server::start();
    let c = client();
    let sample = dir.path().join("usage-daily.jsonl");
    // The first sample is taken at start, before any namespace exists.
    wait_for(&sample);
    let r = c
        .post(format!("{}/api/v1/namespaces", srv.url()))
        .json(&serde_json::json!({"name": "acme"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    // One sample a day: a restart the same day adds none...
    srv.restart();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let h: serde_json::Value = c
        .get(format!("{}/api/v1/usage/history", srv.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let samples = h["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{h}");
    assert_eq!(samples[0]["namespaces"], serde_json::json!({}), "{h}");
    // ...and without today's sample, the next start records one with acme.
    srv.stop();
    std::fs::remove_file(&sample).unwrap();
    srv.restart();
    wait_for(&sample);
    let h: serde_json::Value = c
        .get(format!("{}/api/v1/usage/history", srv.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let samples = h["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{h}");
    assert_eq!(samples[0]["namespaces"]["acme"], 0, "{h}");
    let date = samples[0]["date"].as_str().unwrap();
    assert_eq!(date.len(), 10, "{date}");
    let post = c
        .post(format!("{}/api/v1/usage/history", srv.url()))
        .send()
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[test]
fn storage_history_needs_credentials_in_token_mode() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, "[auth]\nmode = \"token\"\n").unwrap();
    let srv = Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let r = client()
        .get(format!("{}/api/v1/usage/history", srv.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("unauthorized"));
}
