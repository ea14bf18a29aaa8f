//! Access-control configuration, black-box: invalid settings are refused
//! with a clear message, the conformance suite passes in token mode, and no
//! secret reaches the logs.

mod common;

use base64::Engine as _;
use common::auth::*;
use reqwest::Method;
use serde_json::json;

#[test]
fn auth_configuration_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[auth]\nmode = \"basic\"\n", "basic"),
        (
            "[auth]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            "trusted_proxies",
        ),
        ("[auth]\ntoken_ttl_secs = 1\n", "token_ttl_secs"),
        ("[auth]\nrealm = \"ftp://x\"\n", "auth.realm"),
        ("[auth]\nservice = \"a\\\"b\"\n", "auth.service"),
        ("[server]\ntls_cert = \"/x.crt\"\n", "tls_key"),
    ];
    for (i, (body, needle)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, body).unwrap();
        let out = berth().args(["config", "check"]).arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {body}");
        assert!(
            err.contains(needle),
            "error for {body:?} does not name {needle:?}: {err}"
        );
    }
    // The environment switches authentication on.
    let p = dir.path().join("ok.toml");
    std::fs::write(&p, "").unwrap();
    let out = berth()
        .args(["config", "check"])
        .arg(&p)
        .env("BERTH_AUTH__MODE", "token")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"mode\": \"token\""));
}

/// The whole conformance suite passes in `token` mode for a caller with
/// the rights (Basic credentials on every request): authentication changes
/// nothing else about `/v2`.
#[test]
fn conformance_in_token_mode() {
    let dir = tempfile::tempdir().unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve(dir.path(), "127.0.0.1:0", &token_config(""), &[], &[]);
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"))
    );
    let report = berth_conformance::run_with_authorization(&p.url, &header);
    report.print();
    assert_eq!(
        report.failed(),
        0,
        "{} of {} checks failed",
        report.failed(),
        report.results.len()
    );
    // And without credentials the same suite is refused.
    let anon = berth_conformance::run(&p.url);
    assert!(
        anon.failed() > anon.results.len() / 2,
        "anonymous run passed {} checks",
        anon.passed()
    );
}

/// Passwords, token secrets and bearer tokens never reach the log, even at
/// debug level.
#[test]
fn no_secret_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve_with(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[("RUST_LOG", "debug")],
        &[],
        Some(&log),
    );
    let c = common::client();
    let admin = basic("admin", ADMIN_PW);
    let url = p.url.clone();
    let (s, v) = api(
        &c,
        Method::POST,
        &url,
        "/users",
        &admin,
        Some(json!({"name": "carol", "password": PW})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = api(
        &c,
        Method::POST,
        &url,
        "/tokens",
        &admin,
        Some(json!({"name": "ci", "scopes": [{"repository": "*", "actions": ["pull", "push"]}]})),
    );
    assert_eq!(s, 201);
    let secret = v["secret"].as_str().unwrap().to_string();
    let (s, v) = get_token(&c, &url, &basic("carol", PW), &["repository:a/b:pull"]);
    assert_eq!(s, 200);
    let jwt = v["token"].as_str().unwrap().to_string();
    let _ = get_token(&c, &url, &basic("carol", "a-wrong-password"), &[]);
    let _ = send(
        &c,
        Method::GET,
        &format!("{url}/v2/a/b/tags/list"),
        &Cred::Bearer(jwt.clone()),
    )
    .send();
    let _ = send(&c, Method::GET, &format!("{url}/v2/"), &basic("x", &secret)).send();
    let _ = api(
        &c,
        Method::PUT,
        &url,
        "/users/carol/password",
        &admin,
        Some(json!({"password": "a-new-password"})),
    );
    let r = c
        .post(format!("{url}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("username", "carol"),
            ("password", "a-new-password"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(p);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("berth::access"),
        "no access log at debug level?\n{text}"
    );
    for s in [
        ADMIN_PW,
        PW,
        "a-wrong-password",
        "a-new-password",
        &secret,
        &secret[6..],
        &jwt,
    ] {
        assert!(!text.contains(s), "{s:?} appears in the log");
    }
    let basic_b64 = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"));
    assert!(
        !text.contains(&basic_b64),
        "an Authorization header appears in the log"
    );
}
