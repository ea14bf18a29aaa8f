//! The subnet allow-list's rules, black-box: bare addresses, host bits,
//! `0.0.0.0/0` denies everyone, `::/0` admits IPv6 only, and a change that
//! would shut out its own caller needs confirming.

mod common;

use common::authkit::*;
use reqwest::Method;
use serde_json::{json, Value};

fn patch(p: &Proc, body: Value) -> (u16, Value) {
    api(
        &client(),
        Method::PATCH,
        &p.url,
        "/registry",
        &Cred::None,
        Some(body),
    )
}

fn v2(p: &Proc) -> u16 {
    client()
        .get(format!("{}/v2/", p.url))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn bare_addresses_mean_one_host_and_host_bits_are_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(dir.path(), "127.0.0.1:0", "");
    let (s, v) = patch(
        &p,
        json!({"api_subnet_allow_list": ["127.0.0.1", "::1", "10.1.2.3/8", "2001:db8::1/32"]}),
    );
    assert_eq!(s, 200, "{v}");
    let want = json!(["127.0.0.1/32", "::1/128", "10.0.0.0/8", "2001:db8::/32"]);
    assert_eq!(v["api_subnet_allow_list"], want);
    let (_, v) = api(
        &client(),
        Method::GET,
        &p.url,
        "/registry",
        &Cred::None,
        None,
    );
    assert_eq!(v["api_subnet_allow_list"], want);
    // 127.0.0.1 alone: 127.0.0.2 is out.
    assert_eq!(v2(&p), 200);
    let from2 = client_from("127.0.0.2");
    assert_eq!(
        from2.get(format!("{}/v2/", p.url)).send().unwrap().status(),
        403
    );
}

#[test]
fn lockout_patch_answers_409_unless_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(dir.path(), "127.0.0.1:0", "");
    for list in [
        json!(["10.0.0.0/8"]),
        json!(["::/0"]),
        json!(["0.0.0.0/0", "127.0.0.0/8"]),
    ] {
        let (s, v) = patch(&p, json!({ "api_subnet_allow_list": list }));
        assert_eq!(s, 409, "{list}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("confirm_lockout"),
            "{v}"
        );
    }
    // Nothing changed.
    let (_, v) = api(
        &client(),
        Method::GET,
        &p.url,
        "/registry",
        &Cred::None,
        None,
    );
    assert_eq!(v["api_subnet_allow_list"], json!([]));
    assert_eq!(v2(&p), 200);
}

#[test]
fn allow_list_with_0_0_0_0_0_denies_all_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = serve(dir.path(), "127.0.0.1:0", "");
    let (s, v) = patch(
        &p,
        json!({"api_subnet_allow_list": ["0.0.0.0/0", "127.0.0.0/8"], "confirm_lockout": true}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v2(&p), 403);
    let h = client().get(format!("{}/healthz", p.url)).send().unwrap();
    assert_eq!(h.status(), 200);
    p.stop();
    // IPv6 clients are denied too.
    let p6 = serve(dir.path(), "[::1]:0", "");
    assert_eq!(v2(&p6), 403);
    drop(p6);
    // The documented recovery, offline on the data directory.
    common::run_ok(
        berth()
            .args(["auth", "clear-allow-list", "--data-dir"])
            .arg(dir.path().join("data")),
    );
    let p = serve(dir.path(), "127.0.0.1:0", "");
    assert_eq!(v2(&p), 200);
}
