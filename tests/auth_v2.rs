//! Token-mode `/v2` challenges, black-box: a cross-repository mount asks
//! for pull on its source, an anonymous `_catalog` asks for
//! `registry:catalog:*`.

mod common;

use common::authkit::*;
use reqwest::Method;
use serde_json::{json, Value};

fn setup() -> (Proc, tempfile::TempDir, reqwest::blocking::Client, Cred) {
    let (p, dir) = token_server("max_failed_logins = 1000\n", &[]);
    let c = client();
    let admin = basic("admin", ADMIN_PW);
    for (ns, public) in [("pub", true), ("priv", false)] {
        let (s, v) = api(
            &c,
            Method::POST,
            &p.url,
            "/namespaces",
            &admin,
            Some(json!({"name": ns, "is_public": public})),
        );
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = api(
        &c,
        Method::POST,
        &p.url,
        "/users",
        &admin,
        Some(json!({"name": "bob", "password": PW})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = api(
        &c,
        Method::PUT,
        &p.url,
        "/namespaces/priv/grants/bob",
        &admin,
        Some(json!({"role": "writer"})),
    );
    assert_eq!(s, 200, "{v}");
    (p, dir, c, admin)
}

/// The `scope` of a `WWW-Authenticate` challenge.
fn challenged_scope(r: &reqwest::blocking::Response) -> String {
    let h = r
        .headers()
        .get("www-authenticate")
        .expect("a challenge")
        .to_str()
        .unwrap();
    let start = h.find("scope=\"").expect("a scope") + 7;
    h[start..][..h[start..].find('"').unwrap()].to_string()
}

#[test]
fn mount_challenge_names_the_source_repository() {
    let (p, _dir, c, admin) = setup();
    let d = push_blob(&c, &p.url, "priv/src", &admin, b"a layer to mount");
    let mount = format!(
        "{}/v2/priv/dst/blobs/uploads/?mount={d}&from=priv/src",
        p.url
    );
    let r = c.post(&mount).send().unwrap();
    assert_eq!(r.status(), 401);
    let scope = challenged_scope(&r);
    assert_eq!(
        scope,
        "repository:priv/dst:pull,push repository:priv/src:pull"
    );
    // A client asking for exactly the challenged scopes can mount.
    let scopes: Vec<&str> = scope.split(' ').collect();
    let (s, v) = get_token(&c, &p.url, &basic("bob", PW), &scopes);
    assert_eq!(s, 200, "{v}");
    let both = Cred::Bearer(v["token"].as_str().unwrap().into());
    let r = send(&c, Method::POST, &mount, &both).send().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    // Without pull on the source the mount becomes an upload session.
    let (s, v) = get_token(
        &c,
        &p.url,
        &basic("bob", PW),
        &["repository:priv/other:pull,push"],
    );
    assert_eq!(s, 200, "{v}");
    let dst_only = Cred::Bearer(v["token"].as_str().unwrap().into());
    let r = send(
        &c,
        Method::POST,
        &format!(
            "{}/v2/priv/other/blobs/uploads/?mount={d}&from=priv/src",
            p.url
        ),
        &dst_only,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 202);
}

fn catalog(c: &reqwest::blocking::Client, url: &str, cred: &Cred) -> (u16, Value) {
    let r = send(c, Method::GET, &format!("{url}/v2/_catalog"), cred)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn anonymous_catalog_is_challenged_for_registry_catalog() {
    let (p, _dir, c, admin) = setup();
    for repo in ["pub/app", "priv/app"] {
        let cfg = push_blob(&c, &p.url, repo, &admin, repo.as_bytes());
        let layer = push_blob(&c, &p.url, repo, &admin, format!("{repo} layer").as_bytes());
        let m = json!({
            "schemaVersion": 2, "mediaType": MT,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": repo.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": format!("{repo} layer").len()}],
        });
        let r = send(
            &c,
            Method::PUT,
            &format!("{}/v2/{repo}/manifests/v1", p.url),
            &admin,
        )
        .header("content-type", MT)
        .body(m.to_string())
        .send()
        .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
    let r = c.get(format!("{}/v2/_catalog", p.url)).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(challenged_scope(&r), "registry:catalog:*");
    // An anonymous token for that scope lists the public repositories.
    let (s, v) = get_token(&c, &p.url, &Cred::None, &["registry:catalog:*"]);
    assert_eq!(s, 200, "{v}");
    let anon = Cred::Bearer(v["token"].as_str().unwrap().into());
    let (s, v) = catalog(&c, &p.url, &anon);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["repositories"], json!(["pub/app"]));
    // Authenticated callers: what they may pull.
    let (s, v) = catalog(&c, &p.url, &admin);
    assert_eq!(s, 200);
    assert_eq!(v["repositories"], json!(["priv/app", "pub/app"]));
    let (s, v) = get_token(&c, &p.url, &basic("bob", PW), &["registry:catalog:*"]);
    assert_eq!(s, 200, "{v}");
    let (s, v) = catalog(
        &c,
        &p.url,
        &Cred::Bearer(v["token"].as_str().unwrap().into()),
    );
    assert_eq!(s, 200);
    assert_eq!(v["repositories"], json!(["priv/app", "pub/app"]));
}
