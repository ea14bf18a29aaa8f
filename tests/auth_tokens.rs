//! Bearer tokens (JWTs from `/auth/token`) cannot outlive or outgrow what
//! they were issued for, on `/v2` and on `/api/v1`, black-box.

mod common;

use common::authkit::*;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

/// A token-mode registry with a private namespace `priv` holding a blob in
/// `priv/app`, and `bob` a reader on it.
struct World {
    p: Proc,
    _dir: tempfile::TempDir,
    c: Client,
    admin: Cred,
}

fn world() -> World {
    let (p, dir) = token_server("max_failed_logins = 1000\n", &[]);
    let c = client();
    let admin = basic("admin", ADMIN_PW);
    let (s, v) = api(
        &c,
        Method::POST,
        &p.url,
        "/namespaces",
        &admin,
        Some(json!({"name": "priv", "is_public": false})),
    );
    assert_eq!(s, 201, "{v}");
    create_user(&c, &p.url, &admin, "bob", PW);
    grant(&c, &p.url, &admin, "priv", "bob", "reader");
    push_blob(&c, &p.url, "priv/app", &admin, b"a layer of priv/app");
    World {
        p,
        _dir: dir,
        c,
        admin,
    }
}

/// bob's JWT to pull `priv/app`, checked to work before the test ends it.
fn working_bob_jwt(w: &World) -> String {
    let t = jwt(w, &basic("bob", PW), &["repository:priv/app:pull"]);
    assert_eq!(tags_status(w, &t), 200);
    t
}

/// `DELETE path` as the administrator (must be 204).
#[track_caller]
fn admin_delete(w: &World, path: &str) {
    let (s, v) = api(&w.c, Method::DELETE, &w.p.url, path, &w.admin, None);
    assert_eq!(s, 204, "{v}");
}

/// A JWT for `cred` with `scopes`.
fn jwt(w: &World, cred: &Cred, scopes: &[&str]) -> String {
    let (s, v) = get_token(&w.c, &w.p.url, cred, scopes);
    assert_eq!(s, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

fn tags_status(w: &World, token: &str) -> u16 {
    send(
        &w.c,
        Method::GET,
        &format!("{}/v2/priv/app/tags/list", w.p.url),
        &Cred::Bearer(token.into()),
    )
    .send()
    .unwrap()
    .status()
    .as_u16()
}

#[test]
fn bearer_jwt_is_not_exchanged_for_a_new_one() {
    let w = world();
    let t = jwt(&w, &basic("bob", PW), &["repository:priv/app:pull"]);
    let bearer = Cred::Bearer(t.clone());
    for scopes in [&["repository:priv/app:pull"][..], &[][..]] {
        let (s, v) = get_token(&w.c, &w.p.url, &bearer, scopes);
        assert_eq!(s, 401, "a JWT was exchanged: {v}");
        assert!(v.get("token").is_none(), "{v}");
    }
    // The admin's JWT with no access cannot be widened either.
    let t = jwt(&w, &w.admin, &[]);
    let (s, v) = get_token(
        &w.c,
        &w.p.url,
        &Cred::Bearer(t),
        &["repository:priv/app:pull,push,delete"],
    );
    assert_eq!(s, 401, "{v}");
}

#[test]
fn password_change_ends_outstanding_jwts() {
    let w = world();
    let t = working_bob_jwt(&w);
    let (s, v) = api(
        &w.c,
        Method::PUT,
        &w.p.url,
        "/users/bob/password",
        &w.admin,
        Some(json!({"password": "another-password-2"})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(tags_status(&w, &t), 401);
}

#[test]
fn recreated_user_is_not_the_subject_of_old_jwts() {
    let w = world();
    let t = working_bob_jwt(&w);
    admin_delete(&w, "/users/bob");
    assert_eq!(tags_status(&w, &t), 401);
    // Same name, same password, same role: still a different user.
    create_user(&w.c, &w.p.url, &w.admin, "bob", PW);
    grant(&w.c, &w.p.url, &w.admin, "priv", "bob", "reader");
    assert_eq!(tags_status(&w, &t), 401);
    let fresh = jwt(&w, &basic("bob", PW), &["repository:priv/app:pull"]);
    assert_eq!(tags_status(&w, &fresh), 200);
}

#[test]
fn grant_removal_ends_jwt_access_at_once() {
    let w = world();
    let t = working_bob_jwt(&w);
    admin_delete(&w, "/namespaces/priv/grants/bob");
    assert_eq!(tags_status(&w, &t), 401);
}

#[test]
fn revoked_scoped_token_ends_its_jwts() {
    let w = world();
    let (id, secret) = create_scoped_token(
        &w.c,
        &w.p.url,
        &w.admin,
        json!({"name": "ci", "scopes": [{"repository": "priv/*", "actions": ["pull"]}]}),
    );
    let t = jwt(&w, &basic("ci", &secret), &["repository:priv/app:pull"]);
    assert_eq!(tags_status(&w, &t), 200);
    admin_delete(&w, &format!("/tokens/{id}"));
    assert_eq!(tags_status(&w, &t), 401);
}

#[test]
fn signing_key_rotation_ends_old_jwts() {
    let w = world();
    let t = working_bob_jwt(&w);
    let (s, v) = api(&w.c, Method::POST, &w.p.url, "/signing-key", &w.admin, None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(tags_status(&w, &t), 401);
    let fresh = jwt(&w, &basic("bob", PW), &["repository:priv/app:pull"]);
    assert_eq!(tags_status(&w, &fresh), 200);
}

#[test]
fn jwt_on_the_api_acts_within_its_access_claim() {
    let w = world();
    // The registry administrator's JWT with no access.
    let empty = Cred::Bearer(jwt(&w, &w.admin, &[]));
    let refused = |path: &str, m: Method, body: Option<Value>| {
        let (s, v) = api(&w.c, m, &w.p.url, path, &empty, body);
        assert!(s == 401 || s == 403, "{path}: {s} {v}");
    };
    refused(
        "/tokens",
        Method::POST,
        Some(
            json!({"name": "forever", "scopes": [{"repository": "*", "actions": ["pull", "push", "delete", "manage"]}]}),
        ),
    );
    refused("/tokens", Method::GET, None);
    refused("/users", Method::GET, None);
    refused(
        "/users",
        Method::POST,
        Some(json!({"name": "mallory", "password": PW, "admin": true})),
    );
    refused(
        "/users/bob/password",
        Method::PUT,
        Some(json!({"password": "owned-password-1"})),
    );
    refused("/namespaces/priv/grants/bob", Method::DELETE, None);
    refused("/signing-key", Method::POST, None);
    refused("/registry", Method::GET, None);
    refused(
        "/registry",
        Method::PATCH,
        Some(json!({"region": "elsewhere"})),
    );
    refused("/namespaces/priv", Method::GET, None);
    refused("/namespaces/priv/repositories/app", Method::GET, None);
    // Nothing of that happened.
    let (s, v) = api(&w.c, Method::GET, &w.p.url, "/tokens", &w.admin, None);
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 0, "{v}");
    // A JWT with pull on priv/app sees the namespace and the repository,
    // and still manages nothing.
    let pull = Cred::Bearer(jwt(&w, &w.admin, &["repository:priv/app:pull"]));
    let (s, v) = api(&w.c, Method::GET, &w.p.url, "/namespaces/priv", &pull, None);
    assert_eq!(s, 200, "{v}");
    let (s, v) = api(
        &w.c,
        Method::GET,
        &w.p.url,
        "/namespaces/priv/repositories/app",
        &pull,
        None,
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = api(
        &w.c,
        Method::PATCH,
        &w.p.url,
        "/namespaces/priv",
        &pull,
        Some(json!({"is_public": true})),
    );
    assert!(s == 401 || s == 403, "{s} {v}");
    // The user's own Basic credentials still manage.
    let (s, v) = api(
        &w.c,
        Method::POST,
        &w.p.url,
        "/tokens",
        &w.admin,
        Some(json!({"name": "ok", "scopes": [{"repository": "priv/*", "actions": ["pull"]}]})),
    );
    assert_eq!(s, 201, "{v}");
}

#[test]
fn registry_settings_are_for_registry_administrators_only() {
    let w = world();
    let (s, v) = api(&w.c, Method::GET, &w.p.url, "/registry", &w.admin, None);
    assert_eq!(s, 200, "{v}");
    let (s, _) = api(
        &w.c,
        Method::GET,
        &w.p.url,
        "/registry",
        &basic("bob", PW),
        None,
    );
    assert_eq!(s, 403);
    let (_, secret) = create_scoped_token(
        &w.c,
        &w.p.url,
        &w.admin,
        json!({"name": "puller", "scopes": [{"repository": "priv/app", "actions": ["pull"]}]}),
    );
    let (s, _) = api(
        &w.c,
        Method::GET,
        &w.p.url,
        "/registry",
        &Cred::Bearer(secret),
        None,
    );
    assert_eq!(s, 403);
    let (s, _) = api(&w.c, Method::GET, &w.p.url, "/registry", &Cred::None, None);
    assert_eq!(s, 401);
}
