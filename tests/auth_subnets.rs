//! The subnet allow-list, black-box: IPv4 and IPv6 rules, resetting it
//! offline, and `X-Forwarded-For` believed only from trusted proxies.

mod common;

use common::auth::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};

fn set_allow_list(c: &Client, url: &str, list: &[&str]) {
    let r = c
        .patch(format!("{url}/api/v1/registry"))
        .json(&json!({ "api_subnet_allow_list": list, "confirm_lockout": true }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

fn statuses(c: &Client, url: &str) -> [u16; 4] {
    let get = |p: &str| c.get(format!("{url}{p}")).send().unwrap().status().as_u16();
    [
        get("/v2/"),
        get("/api/v1/registry"),
        get("/auth/token"),
        get("/healthz"),
    ]
}

#[test]
fn subnet_allow_list_ipv4() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(dir.path(), "127.0.0.1:0", "", &[], &[]);
    let c = common::client();
    let from2 = client_from("127.0.0.2");
    set_allow_list(&c, &p.url, &["127.0.0.2/32", "2001:db8::/32"]);
    // /auth/token answers 404 with auth off; what matters is that the
    // allow-list answers first with 403.
    assert_eq!(statuses(&c, &p.url), [403, 403, 403, 200]);
    let r = c.get(format!("{}/v2/", p.url)).send().unwrap();
    let body: Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let r = c
        .get(format!("{}/api/v1/namespaces", p.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "denied");
    assert_eq!(statuses(&from2, &p.url), [200, 200, 404, 200]);
    // A whole /8 lets both in.
    set_allow_list(&from2, &p.url, &["127.0.0.0/8"]);
    assert_eq!(statuses(&c, &p.url), [200, 200, 404, 200]);
}

#[test]
fn subnet_allow_list_ipv6_and_offline_reset() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = serve(dir.path(), "[::1]:0", "", &[], &[]);
    assert!(p.url.starts_with("http://[::1]:"), "{}", p.url);
    let c = common::client();
    set_allow_list(&c, &p.url, &["::1/128"]);
    assert_eq!(statuses(&c, &p.url), [200, 200, 404, 200]);
    set_allow_list(&c, &p.url, &["2001:db8::/32", "127.0.0.0/8"]);
    assert_eq!(statuses(&c, &p.url), [403, 403, 403, 200]);
    // Locked out: `berth auth clear-allow-list` with the server stopped.
    p.stop();
    common::run_ok(
        berth()
            .args(["auth", "clear-allow-list", "--data-dir"])
            .arg(p.dir.join("data")),
    );
    let p = serve(dir.path(), "[::1]:0", "", &[], &[]);
    assert_eq!(statuses(&c, &p.url), [200, 200, 404, 200]);
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        "[auth]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        &[],
        &[],
    );
    let c = common::client();
    set_allow_list(&c, &p.url, &["2001:db8::/32", "10.0.0.0/8"]);
    let via = |c: &Client, xff: Option<&str>| {
        let mut r = c.get(format!("{}/v2/", p.url));
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(via(&c, Some("2001:db8::7")), 200);
    assert_eq!(via(&c, Some("2001:db9::7")), 403);
    assert_eq!(via(&c, Some("10.1.2.3")), 200);
    assert_eq!(via(&c, Some("192.0.2.1")), 403);
    // The right-most address not a trusted proxy is the client.
    assert_eq!(via(&c, Some("10.1.2.3, 192.0.2.1")), 403);
    assert_eq!(via(&c, Some("192.0.2.1, 10.1.2.3")), 200);
    assert_eq!(via(&c, Some("garbage")), 403);
    assert_eq!(via(&c, None), 403);
    // From an untrusted peer the header is ignored.
    let from2 = client_from("127.0.0.2");
    assert_eq!(via(&from2, Some("10.1.2.3")), 403);
}
