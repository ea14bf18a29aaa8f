//! Users, scoped tokens and the audit log through the management API, the
//! first administrator from the environment (no default password), and
//! failed logins throttled per address and per user; black-box.

mod common;

use common::auth::*;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn users_tokens_and_audit_through_the_api() {
    let w = world("");
    let url = w.p.url.clone();
    let c = &w.c;
    let reader = basic("reader", PW);

    let (s, v) = api(c, Method::GET, &url, "/me", &reader, None);
    assert_eq!(s, 200);
    assert_eq!(v["name"], "reader");
    assert_eq!(v["kind"], "user");
    assert_eq!(v["admin"], false);
    assert_eq!(v["roles"].as_array().unwrap().len(), 2);
    let (s, _) = api(c, Method::GET, &url, "/me", &Cred::None, None);
    assert_eq!(s, 401);

    // Only administrators manage users and tokens.
    let (s, _) = api(c, Method::GET, &url, "/users", &reader, None);
    assert_eq!(s, 403);
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/users",
        &reader,
        Some(json!({"name": "x", "password": "xxxxxxxxx"})),
    );
    assert_eq!(s, 403);
    let (s, _) = api(c, Method::GET, &url, "/tokens", &Cred::None, None);
    assert_eq!(s, 401);
    let (s, v) = api(c, Method::GET, &url, "/users", &w.admin, None);
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 5);
    assert!(v.to_string().find("argon2").is_none(), "no hash in answers");
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/users",
        &w.admin,
        Some(json!({"name": "reader", "password": "xxxxxxxxx"})),
    );
    assert_eq!(s, 409);
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/users",
        &w.admin,
        Some(json!({"name": "short", "password": "x"})),
    );
    assert_eq!(s, 400);

    // Changing one's own password needs the current one.
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/users/reader/password",
        &reader,
        Some(json!({"password": "new-password-2"})),
    );
    assert_eq!(s, 400);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/users/reader/password",
        &reader,
        Some(json!({"password": "new-password-2", "current_password": PW})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(c, Method::GET, &url, "/me", &reader, None);
    assert_eq!(s, 401, "the old password stops working at once");
    let reader = basic("reader", "new-password-2");
    let (s, _) = api(c, Method::GET, &url, "/me", &reader, None);
    assert_eq!(s, 200);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/users/writer/password",
        &reader,
        Some(json!({"password": "hijacked-1"})),
    );
    assert_eq!(s, 403);

    // Revoking a role takes effect at once.
    let (s, v) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/grants",
        &w.admin,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 3, "{v}");
    let (s, _) = api(
        c,
        Method::DELETE,
        &url,
        "/namespaces/priv/grants/reader",
        &w.admin,
        None,
    );
    assert_eq!(s, 204);
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/priv/app/tags/list"),
        &reader,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 403);
    // Namespace admins manage their namespace's members, not others'.
    let nsadmin = basic("nsadmin", PW);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/namespaces/priv/grants/reader",
        &nsadmin,
        Some(json!({"role": "reader"})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(
        c,
        Method::PATCH,
        &url,
        "/registry",
        &nsadmin,
        Some(json!({"name": "x"})),
    );
    assert_eq!(s, 403);

    // Scoped tokens: the secret once, then never again; a Bearer on the
    // API; last use recorded; revocation immediate.
    let (id, secret) = create_token(
        &w,
        "deployer",
        json!([{"repository": "pub/*", "actions": ["pull", "manage"]}]),
        json!({}),
    );
    let (s, v) = api(c, Method::GET, &url, "/tokens", &w.admin, None);
    assert_eq!(s, 200);
    assert!(!v.to_string().contains(&secret[10..]), "secret listed: {v}");
    assert!(v["tokens"][0]["last_used_at"].is_null());
    let bearer = Cred::Bearer(secret.clone());
    let (s, v) = api(c, Method::GET, &url, "/me", &bearer, None);
    assert_eq!(s, 200);
    assert_eq!(v["kind"], "token");
    assert_eq!(v["name"], "deployer");
    let (s, _) = api(
        c,
        Method::PATCH,
        &url,
        "/namespaces/pub",
        &bearer,
        Some(json!({"description": "by token"})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(
        c,
        Method::PATCH,
        &url,
        "/namespaces/priv",
        &bearer,
        Some(json!({"description": "by token"})),
    );
    assert_eq!(s, 403);
    let (s, v) = api(
        c,
        Method::GET,
        &url,
        &format!("/tokens/{id}"),
        &w.admin,
        None,
    );
    assert_eq!(s, 200);
    assert!(v["last_used_at"].is_string(), "{v}");
    let (s, _) = api(
        c,
        Method::DELETE,
        &url,
        &format!("/tokens/{id}"),
        &w.admin,
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = api(c, Method::GET, &url, "/me", &bearer, None);
    assert_eq!(s, 401);
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/tokens",
        &w.admin,
        Some(json!({"name": "bad", "scopes": [{"repository": "A B", "actions": ["pull"]}]})),
    );
    assert_eq!(s, 400);

    // Deleting a namespace drops its roles: a namespace created later under
    // the same name starts without members.
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/namespaces",
        &w.admin,
        Some(json!({"name": "tmp"})),
    );
    assert_eq!(s, 201);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/namespaces/tmp/grants/writer",
        &w.admin,
        Some(json!({"role": "admin"})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(c, Method::DELETE, &url, "/namespaces/tmp", &w.admin, None);
    assert_eq!(s, 202);
    for _ in 0..100 {
        let (s, _) = api(c, Method::GET, &url, "/namespaces/tmp", &w.admin, None);
        if s == 404 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, v) = api(
        c,
        Method::POST,
        &url,
        "/namespaces",
        &w.admin,
        Some(json!({"name": "tmp"})),
    );
    assert_eq!(s, 201, "{v}");
    let (_, v) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/tmp/grants",
        &w.admin,
        None,
    );
    assert_eq!(v["total_count"], 0, "{v}");

    // Deleting a user ends their access.
    let (s, _) = api(c, Method::DELETE, &url, "/users/writer", &w.admin, None);
    assert_eq!(s, 204);
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/priv/app/tags/list"),
        &basic("writer", PW),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);

    // The audit log says who did what from where; reading it is for admins.
    let (s, _) = api(c, Method::GET, &url, "/audit", &reader, None);
    assert_eq!(s, 403);
    let (s, v) = api(c, Method::GET, &url, "/audit?page_size=100", &w.admin, None);
    assert_eq!(s, 200);
    let entries = v["entries"].as_array().unwrap();
    let has = |actor: &str, action: &str, target: &str| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["action"] == action
                && e["target"].as_str().unwrap().contains(target)
        })
    };
    assert!(has("admin", "push", "priv/app:seed"), "{v}");
    assert!(has("admin", "grant", "priv:reader"), "{v}");
    assert!(has("admin", "revoke", "priv:reader"), "{v}");
    assert!(has("nsadmin", "grant", "priv:reader"), "{v}");
    assert!(has("admin", "user.delete", "/api/v1/users/writer"), "{v}");
    assert!(
        has("reader", "user.password", "/api/v1/users/reader/password"),
        "{v}"
    );
    assert!(
        has(
            "token:deployer",
            "namespace.update",
            "/api/v1/namespaces/pub"
        ),
        "{v}"
    );
    assert!(has("admin", "token.revoke", &id), "{v}");
    assert!(entries.iter().all(|e| e["address"] == "127.0.0.1"), "{v}");
    assert!(
        !v.to_string().contains(PW) && !v.to_string().contains(&secret),
        "secrets in the audit log"
    );
    // Newest first.
    assert!(entries[0]["at"].as_str() >= entries[entries.len() - 1]["at"].as_str());
}

#[test]
fn first_admin_from_the_environment_and_no_default_password() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::client();
    // No user, no password: nothing can be done.
    let mut p = serve(dir.path(), "127.0.0.1:0", &token_config(""), &[], &[]);
    for pw in ["admin", "password", "berth", ""] {
        let r = c
            .get(format!("{}/v2/", p.url))
            .basic_auth("admin", Some(pw))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "admin:{pw:?}");
    }
    let r = c.get(format!("{}/v2/_catalog", p.url)).send().unwrap();
    assert_eq!(r.status(), 401);
    p.stop();
    // BERTH_ADMIN_PASSWORD creates `admin` on a start without users...
    let mut p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[("BERTH_ADMIN_PASSWORD", ADMIN_PW)],
        &[],
    );
    let (s, v) = api(
        &c,
        Method::GET,
        &p.url,
        "/me",
        &basic("admin", ADMIN_PW),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v["admin"], true);
    p.stop();
    // ...and only then: later values are ignored.
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[("BERTH_ADMIN_PASSWORD", "another-one-9")],
        &[],
    );
    let (s, _) = api(
        &c,
        Method::GET,
        &p.url,
        "/me",
        &basic("admin", "another-one-9"),
        None,
    );
    assert_eq!(s, 401);
    let (s, _) = api(
        &c,
        Method::GET,
        &p.url,
        "/me",
        &basic("admin", ADMIN_PW),
        None,
    );
    assert_eq!(s, 200);
}

#[test]
fn failed_logins_are_throttled_per_address_and_per_user() {
    let dir = tempfile::tempdir().unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    user_add(dir.path(), "bob", PW, false);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        "[auth]\nmode = \"token\"\nmax_failed_logins = 3\n",
        &[],
        &[],
    );
    let c = common::client();
    let other = client_from("127.0.0.2");
    let status = |c: &Client, u: &str, pw: &str| {
        c.get(format!("{}/v2/", p.url))
            .basic_auth(u, Some(pw))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..3 {
        assert_eq!(status(&c, "admin", "guess-guess"), 401);
    }
    // Locked for this user, even with the right password, from anywhere...
    let r = c
        .get(format!("{}/v2/", p.url))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    assert_eq!(status(&other, "admin", ADMIN_PW), 429);
    // ...and for this address, whoever tries.
    assert_eq!(status(&c, "bob", PW), 429);
    // Another user from another address is not affected.
    assert_eq!(status(&other, "bob", PW), 200);
    // The token endpoint and the API are throttled too.
    let r = c
        .get(format!("{}/auth/token", p.url))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = c
        .get(format!("{}/api/v1/me", p.url))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
}
