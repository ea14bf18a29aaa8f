//! Smaller access-control findings, black-box: IPv4-mapped CIDRs,
//! passwords that look like token secrets, attacker-chosen user names in
//! the audit log.

mod common;

use common::authkit::*;
use reqwest::Method;
use serde_json::json;

#[test]
fn ipv4_mapped_cidrs_use_the_prefix_minus_96() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        "[auth]\ntrusted_proxies = [\"::ffff:127.0.0.0/104\"]\n",
    );
    let c = client();
    let set = |list: &[&str]| {
        let (s, v) = api(
            &c,
            Method::PATCH,
            &p.url,
            "/registry",
            &Cred::None,
            Some(json!({ "api_subnet_allow_list": list })),
        );
        assert_eq!(s, 200, "{v}");
    };
    // 127.0.0.2 is inside ::ffff:127.0.0.0/104 (= 127.0.0.0/8): a trusted
    // proxy, so the address it forwards is the client's.
    set(&["10.0.0.0/8", "127.0.0.1/32"]);
    let from2 = client_from("127.0.0.2");
    let status = |c: &reqwest::blocking::Client, xff: &str| {
        c.get(format!("{}/v2/", p.url))
            .header("x-forwarded-for", xff)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&from2, "10.1.2.3"), 200);
    assert_eq!(status(&from2, "192.0.2.1"), 403);
    // In the allow-list too.
    set(&["::ffff:127.0.0.0/104"]);
    let from3 = client_from("127.0.0.3");
    assert_eq!(
        from3.get(format!("{}/v2/", p.url)).send().unwrap().status(),
        200
    );
}

#[test]
fn password_beginning_with_berth_can_log_in() {
    let pw = "berth_is-my-password-1";
    let (p, _dir) = token_server("", &[("bob", pw)]);
    let c = client();
    let s = |pw: &str| {
        c.get(format!("{}/v2/", p.url))
            .basic_auth("bob", Some(pw))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(s(pw), 200);
    assert_eq!(s("berth_is-not-my-password"), 401);
    let (st, v) = get_token(&c, &p.url, &basic("bob", pw), &[]);
    assert_eq!(st, 200, "{v}");
}

#[test]
fn attacker_chosen_user_names_are_capped_in_the_audit_log() {
    let (p, _dir) = token_server("", &[]);
    let c = client();
    let long = "n".repeat(40_000);
    let r = c
        .get(format!("{}/v2/", p.url))
        .basic_auth(&long, Some("some-password"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let (s, v) = api(
        &c,
        Method::GET,
        &p.url,
        "/audit",
        &basic("admin", ADMIN_PW),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let failed: Vec<_> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{v}");
    let actor = failed[0]["actor"].as_str().unwrap();
    assert!(actor.len() <= 256, "{} bytes stored", actor.len());
    assert!(actor.starts_with("nnnn"));
}
